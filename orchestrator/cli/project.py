"""Loading the Compose project for any verb from the global options, the process environment and cwd.

Owns the one bridge between the command line and the pure loader: it reads ``os.environ`` and the
current directory, builds the real-disk FileSource (:class:`orchestrator.hostfs.HostFileSource`)
and calls :func:`orchestrator.stack.loader.load`. Every verb that needs the project calls
:func:`load_project_from_cli`; warnings are printed on stderr the way Docker Compose prints them.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.cli.options import CommandContext, global_options
from orchestrator.errors import OrcError

if TYPE_CHECKING:
    from orchestrator.stack.project import Project


def print_warnings(warnings: list[str]) -> None:
    """One logrus-style line per warning on stderr, as Docker Compose prints them."""
    if not warnings:
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for warning in warnings:
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
        print(f'time="{stamp}" level=warning msg="{escaped}"', file=sys.stderr)


def load_project_from_cli(
    ctx: CommandContext,
    *,
    interpolate: bool = True,
    resolve_env_files: bool = True,
    show_warnings: bool = True,
    services: tuple[str, ...] = (),
    cache: Path | None = None,
) -> Project:
    """The project the global options (-f -p --project-directory --profile --env-file) describe.
    ``cache``: a directory of projects loaded before (``cli.loadcache``), reused while nothing
    the loader read has changed."""
    options = global_options(ctx)
    cwd, environ = os.getcwd(), dict(os.environ)
    fields: dict[str, Any] = {
        "files": tuple(options.files),
        "project_name": options.project_name,
        "project_directory": options.project_directory,
        "profiles": tuple(options.profiles),
        "env_files": tuple(options.env_files),
        "interpolate": interpolate,
        "resolve_env_files": resolve_env_files,
        "home": environ.get("HOME"),
        "services": services,
    }
    from orchestrator.cli import loadcache

    key = None
    if cache is not None:
        key = loadcache.cache_key(cwd, environ, fields)
        project = loadcache.lookup(cache, key)
        if project is not None:
            if show_warnings:
                print_warnings(project.warnings)
            return project
    from orchestrator.stack.loader import LoadOptions, load

    source = loadcache.RecordingFileSource()
    try:
        project = load(LoadOptions(cwd=cwd, environ=environ, **fields), source)
    except OrcError as err:
        # what was noticed before the failure (unset variables...) still helps
        if show_warnings:
            print_warnings(list(getattr(err, "warnings", [])))
        raise
    if cache is not None and key is not None:
        loadcache.store(cache, key, source.answers, project)
    if show_warnings:
        print_warnings(project.warnings)
    return project
