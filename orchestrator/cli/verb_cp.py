"""``orc cp``: copy files between a service container and the host.

``orc cp [--index N] SERVICE:SRC DEST`` and ``orc cp SRC SERVICE:DEST``. The container must be
running: its files are reached through ``/proc/<pid>/root``, with the container-side path
resolved as if that root were ``/`` (a symlink in the container cannot point the copy at the
host). Docker's rules for the destination: an existing directory receives the source under its
own name; ``SRC/.`` copies a directory's contents; a missing destination is created. Symlinks
inside a copied tree are copied as symlinks. Called by the CLI only; no supervisor is needed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.lifecycle import project_handle
from orchestrator.errors import NotFoundError, PermanentError, UsageError


def split_container_path(argument: str) -> tuple[str | None, str]:
    """``web:/etc/hosts`` → ("web", "/etc/hosts"); a host path (no colon before the first slash,
    or starting with ``/`` or ``.``) → (None, path)."""
    if argument.startswith(("/", ".")):
        return None, argument
    service, colon, path = argument.partition(":")
    if not colon or "/" in service:
        return None, argument
    return service, path


def container_path(root: str, path: str) -> str:
    """The host path of ``path`` inside the container whose root directory is ``root``; symlinks
    are resolved within the container (the last component too, as ``docker cp`` follows it)."""
    from orchestrator.runtime.process.sequence import secure_join

    def readlink(candidate: str) -> str | None:
        try:
            return os.readlink(candidate)
        except OSError:
            return None

    absolute = path if path.startswith("/") else "/" + path
    return secure_join(root, absolute, readlink)


def copy(source: str, destination: str, contents_only: bool = False) -> str:
    """Copy a file or directory tree the way ``docker cp`` lays it out; returns the path made."""
    if not os.path.lexists(source):
        raise NotFoundError(f"no such file or directory: {source}")
    if os.path.isdir(source):
        if os.path.isdir(destination):
            target = destination if contents_only else os.path.join(destination, os.path.basename(source))
        elif os.path.lexists(destination):
            raise PermanentError(f"cannot copy a directory to a non-directory: {destination}")
        else:
            target = destination
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        return target
    if destination.endswith("/") and not os.path.isdir(destination):
        raise NotFoundError(f"destination directory {destination} does not exist")
    target = (
        os.path.join(destination, os.path.basename(source)) if os.path.isdir(destination) else destination
    )
    if not os.path.isdir(os.path.dirname(os.path.abspath(target))):
        raise NotFoundError(f"no such directory: {os.path.dirname(target)}")
    shutil.copy2(source, target, follow_symlinks=False)
    return target


def register(app: typer.Typer) -> None:
    @app.command("cp")
    def cp_cmd(
        ctx: typer.Context,
        source: Annotated[str, typer.Argument(metavar="SERVICE:SRC_PATH|SRC_PATH")],
        destination: Annotated[str, typer.Argument(metavar="DEST_PATH|SERVICE:DEST_PATH")],
        index: Annotated[int, typer.Option("--index", help="Index of the container")] = 1,
    ) -> None:
        """Copy files/folders between a service container and the local filesystem."""
        from_service, from_path = split_container_path(source)
        to_service, to_path = split_container_path(destination)
        if (from_service is None) == (to_service is None):
            raise UsageError(
                "copy between a container and the host: exactly one of SRC and DEST is SERVICE:PATH"
            )
        if source == "-" or destination == "-":
            raise UsageError("orc cp does not stream tar archives (-); give a path")
        handle, _ = project_handle(ctx, need_files=False)
        service = from_service or to_service
        assert service is not None
        record = handle.container_for(service, index)
        if record.status not in ("running", "paused") or record.pid is None:
            raise PermanentError(f"container {record.name} is not running (orc cp needs a running container)")
        root = f"/proc/{record.pid}/root"
        contents_only = (from_path if from_service else source).rstrip("/").endswith("/.")
        if from_service is not None:
            inside = container_path(root, from_path)
            copy(inside, os.path.abspath(to_path), contents_only)
        else:
            inside = container_path(root, to_path)
            if to_path.endswith("/") and not os.path.isdir(inside):
                raise NotFoundError(f"{record.name}: destination directory {to_path} does not exist")
            copy(str(Path(from_path).absolute()), inside, contents_only)
        typer.echo(f" Copied {source} to {destination}", err=True)
