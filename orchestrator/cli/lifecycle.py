"""Shared plumbing of the lifecycle verbs (up, down, ps, logs, exec, stop, start, restart, plan).

Owned here: turning the global options, the process environment and the current directory into a
:class:`~orchestrator.daemon.handle.ProjectHandle` and a :class:`~orchestrator.daemon.handle.LoadRequest`
(the only reads of ambient state for these verbs), the images settings ``up`` sends along
(:func:`image_options`: the environment's registry variables, home and project directory) and the
``compose.lock`` pins of ``up --locked`` (:func:`locked_images`), and printing the supervisor's
progress events the way Docker Compose prints them on stderr, in the global ``--progress`` mode
(:func:`set_progress`): ``tty`` `` ✔ Container demo-web-1  Started``, ``plain``
`` Container demo-web-1  Started``, ``json`` ``{"id":"Container demo-web-1","status":"Started"}``,
``quiet`` nothing; ``auto`` (the default) is ``tty`` when stderr is a terminal, else ``plain``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from orchestrator.cli.options import CommandContext, GlobalOptions, global_options
from orchestrator.errors import OrcError, PermanentError, UsageError

if TYPE_CHECKING:  # the daemon's modules are imported only by the verbs that run
    from orchestrator.daemon.handle import LoadRequest, ProjectHandle, Roots

_WORDS = {
    ("container", "create"): "Created",
    ("container", "start"): "Started",
    ("container", "stop"): "Stopped",
    ("container", "destroy"): "Removed",
    ("container", "restart"): "Restarted",
    ("container", "health_status: healthy"): "Healthy",
    ("container", "health_status: unhealthy"): "Unhealthy",
    ("network", "create"): "Created",
    ("network", "destroy"): "Removed",
    ("volume", "create"): "Created",
    ("volume", "destroy"): "Removed",
    ("image", "pull"): "Pulled",
}


PROGRESS_MODES = ("auto", "tty", "plain", "json", "quiet")
_progress = {"mode": "auto"}


def set_progress(mode: str) -> None:
    """The global ``--progress`` mode every verb's :func:`print_event` prints in."""
    if mode not in PROGRESS_MODES:
        raise UsageError(f"unsupported --progress {mode!r}: one of {', '.join(PROGRESS_MODES)}")
    _progress["mode"] = mode


PULL_CHOICES = ("always", "missing", "never", "policy")


def pull_option(value: str | None) -> str | None:
    """``--pull``: ``always``, ``missing``, ``never``, or ``policy`` (the services' own
    ``pull_policy``, also what no ``--pull`` means: None)."""
    if value is None or value == "policy":
        return None
    if value not in PULL_CHOICES:
        raise UsageError(f"invalid --pull {value!r}: one of {', '.join(PULL_CHOICES)}")
    return value


ANSI_MODES = ("never", "always", "auto")
_ansi = {"mode": "auto"}


def set_ansi(mode: str) -> None:
    """The global ``--ansi`` mode: ``never`` (no colours, plain progress), ``always`` (colours
    and the terminal's progress even when not on a terminal), ``auto`` (on a terminal only)."""
    if mode not in ANSI_MODES:
        raise UsageError(f"unsupported --ansi {mode!r}: one of {', '.join(ANSI_MODES)}")
    _ansi["mode"] = mode


def use_global_options(
    *,
    files: list[str],
    project_name: str | None,
    project_directory: str | None,
    profiles: list[str],
    env_files: list[str],
    root: str | None,
    progress: str = "auto",
    ansi: str = "auto",
    parallel: int = -1,
    dry_run: bool = False,
) -> GlobalOptions:
    """The global options as the command line gave them (``parallel`` -1: the supervisor's
    bound), checked, with the progress and ANSI modes set for the command: what the typer
    app's callback and ``cli.fast`` both do with them."""
    set_progress(progress)
    set_ansi(ansi)
    if parallel == 0 or parallel < -1:
        raise UsageError(f"invalid --parallel {parallel}: -1 (unlimited) or at least 1")
    return GlobalOptions(
        files=files,
        project_name=project_name,
        project_directory=project_directory,
        profiles=profiles,
        env_files=env_files,
        root=root,
        progress=progress,
        ansi=ansi,
        parallel=None if parallel == -1 else parallel,
        dry_run=dry_run,
    )


def ansi_allowed(stream: Any) -> bool:
    """Whether ANSI control characters may go to ``stream`` under the ``--ansi`` mode."""
    mode = _ansi["mode"]
    if mode == "auto":
        return bool(stream.isatty())
    return mode == "always"


def progress_mode() -> str:
    """The effective mode: ``auto`` resolved against whether stderr takes ANSI (``--ansi``)."""
    mode = _progress["mode"]
    if mode == "auto":
        return "tty" if ansi_allowed(sys.stderr) else "plain"
    return mode


def load_request(ctx: CommandContext) -> LoadRequest:
    from orchestrator.daemon.handle import LoadRequest

    options = global_options(ctx)
    return LoadRequest(
        cwd=os.getcwd(),
        environ=dict(os.environ),
        files=list(options.files),
        project_name=options.project_name,
        project_directory=options.project_directory,
        profiles=list(options.profiles),
        env_files=list(options.env_files),
        home=os.environ.get("HOME"),
    )


def guess_project_name(ctx: CommandContext) -> str | None:
    """The project name, cheaply and without the loader, or None when unsure. Lets ``up`` start
    the supervisor while the files are loaded; a wrong guess only costs that supervisor."""
    from orchestrator.cli.entry import guess_project_name as guess

    options = global_options(ctx)
    return guess(options.project_name, options.files, options.project_directory)


def project_payload(loaded: Any) -> dict[str, Any]:
    """The loaded project as the supervisor takes it (the canonical document, bound there)."""
    from orchestrator.reconciler.payload import document_payload

    return document_payload(loaded)


# What ``runtime.images.registry.options_from_environment`` reads (importing it here would cost
# every ``up`` about 0.15 s of httpx imports; the supervisor calls it with these values).
REGISTRY_VARIABLES = ("DOCKER_CONFIG", "ORC_INSECURE_REGISTRIES", "ORC_CERTS_DIR")


def image_options(loaded: Any) -> dict[str, Any]:
    """The registry variables of this process's environment, the home directory (for
    ``~/.docker/config.json``) and the project directory (for relative ``oci:`` sources), as the
    supervisor takes them (``options.image_options``)."""
    from pathlib import Path

    # ``reconciler.ports.ImageOptions.to_json``'s shape, built here: that module's dataclasses
    # cost every `up` ~5 ms to import (tests/unit/test_cli_image_options.py reads it back as the supervisor does).
    return {
        "environment": {k: os.environ[k] for k in REGISTRY_VARIABLES if k in os.environ},
        "home": str(Path.home()),
        "base_dir": str(loaded.working_dir),
    }


def locked_images(loaded: Any) -> dict[str, str]:
    """``up --locked``: service → the reference pinned in ``compose.lock`` (beside the first
    Compose file) for the service's platform. Refuses, naming the lock file, the service and both
    images, when there is no lock file or it does not match the Compose file."""
    from pathlib import Path

    from orchestrator.cli.verb_images import project_images
    from orchestrator.runtime.images.lock import lock_path, locked_sources

    images = project_images(loaded)
    return locked_sources(
        lock_path(Path(loaded.files[0])),
        {name: item["image"] for name, item in images.items()},
        {name: item["platform"] for name, item in images.items()},
    )


def roots(ctx: CommandContext) -> Roots:
    from orchestrator.daemon.handle import Roots

    return Roots.from_option(global_options(ctx).root)


def cgroup_prefix() -> str:
    return os.environ.get("ORC_CGROUP_PREFIX") or "orc"


# Projects loaded before, under the run root (``cli.loadcache``): the verbs that go to the
# supervisor reuse one while nothing the loader read has changed.
LOAD_CACHE = ".load-cache"


def project_handle(ctx: CommandContext, need_files: bool = True) -> tuple[ProjectHandle, Any]:
    """The project the options name and, when its files can be loaded, the loaded project.

    With ``need_files=False`` a ``-p NAME`` without any Compose file is enough (``down``, ``ps``).
    """
    from orchestrator.cli.project import load_project_from_cli
    from orchestrator.daemon.handle import ProjectHandle

    options = global_options(ctx)
    loaded = None
    try:
        loaded = load_project_from_cli(ctx, cache=roots(ctx).run / LOAD_CACHE)
    except OrcError:
        if need_files or not options.project_name:
            raise
    name = loaded.name if loaded is not None else options.project_name
    if not name:
        raise PermanentError("no project: give Compose files (-f) or a project name (-p)")
    return ProjectHandle(roots(ctx), name, cgroup_prefix(), parallel=options.parallel), loaded


def event_line(event: dict[str, Any], mode: str) -> str | None:
    """The line a progress event prints as in ``mode`` (tty, plain, json, quiet), if any."""
    if mode == "quiet":
        return None
    word = _WORDS.get((event.get("type", ""), event.get("action", "")))
    kind = str(event.get("type", "")).capitalize()
    if word is None:
        if event.get("action") != "retry":
            return None
        error = str(event.get("attributes", {}).get("error", ""))
        if mode == "json":
            return json.dumps(
                {"id": f"{kind} {event.get('id')}", "status": "Retrying", "text": error},
                separators=(",", ":"),
            )
        return f" ! {event.get('id')}  retrying: {error}"
    if mode == "json":
        return json.dumps({"id": f"{kind} {event.get('id')}", "status": word}, separators=(",", ":"))
    mark = " ✔" if mode == "tty" else ""
    return f"{mark} {kind} {event.get('id')}  {word}"


def print_event(event: dict[str, Any]) -> None:
    line = event_line(event, progress_mode())
    if line is not None:
        print(line, file=sys.stderr)


def without_pulls(event: dict[str, Any]) -> None:
    """``--quiet-pull``: print every progress event but the images'."""
    if event.get("type") != "image":
        print_event(event)


def finish(result: dict[str, Any]) -> None:
    """Print warnings and failures of a report; failures end the command with exit code 1."""
    for warning in result.get("warnings") or []:
        print(f"WARN {warning}", file=sys.stderr)
    failed = result.get("failed") or {}
    skipped = result.get("skipped") or {}
    if failed:
        lines = [f"{key}: {why}" for key, why in sorted(failed.items())]
        lines += [f"{key}: skipped ({why})" for key, why in sorted(skipped.items())]
        raise PermanentError("\n".join(lines))
