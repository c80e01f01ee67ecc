"""The most frequent command lines without typer: ``up -d``, ``down``, ``ps``, ``stop``, ``start``
and ``restart`` in their plain forms.

Owned here: :func:`run`, called by ``cli.entry`` before it would import the typer app. Importing
typer and click is ~60 ms of every command's start, more than the rest of a repeated ``up -d``
or of ``down``'s own CLI work. This path parses a strict subset of what the app accepts: the
global options (``-f``, ``-p``, ``--project-directory``, ``--profile``, ``--env-file``, ``--root``,
``--progress``, ``--ansi``, ``--parallel``, as ``--name value`` or ``--name=value``), then
``up`` with ``-d``/``--detach`` and service names, ``down`` with ``-v``/``--volumes``,
``--remove-orphans`` and ``-t``/``--timeout``, or ``ps`` with ``-a``/``--all``,
``-q``/``--quiet``, ``--services``, ``--format`` and service names, or ``stop``/``restart`` with
``-t``/``--timeout`` and service names, or ``start`` with service names. It then runs the very
functions the typer commands run (``cli.up.run_up``, ``cli.down.run_down``, ``cli.ps.run_ps``,
``cli.stop``'s) with the same values. Anything else
(another option, ``--help``, ``--dry-run``, a value typer would have to convert or reject)
returns None, and the typer app handles the command line as always.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

_WITH_VALUE = {
    "-f": "files",
    "--file": "files",
    "-p": "project_name",
    "--project-name": "project_name",
    "--project-directory": "project_directory",
    "--profile": "profiles",
    "--env-file": "env_files",
    "--root": "root",
    "--progress": "progress",
    "--ansi": "ansi",
    "--parallel": "parallel",
}
_REPEATED = frozenset({"files", "profiles", "env_files"})


def parse(argv: Sequence[str]) -> tuple[dict[str, Any], str, dict[str, Any]] | None:
    """``(global options, verb, the verb's arguments)`` for a command line in the subset this
    path takes, else None."""
    options: dict[str, Any] = {"files": [], "profiles": [], "env_files": []}
    args = list(argv)
    while args and args[0].startswith("-"):
        name, equals, value = args.pop(0).partition("=")
        field = _WITH_VALUE.get(name)
        if field is None or (equals and not name.startswith("--")):
            return None
        if not equals:
            if not args:
                return None
            value = args.pop(0)
        if field in _REPEATED:
            options[field].append(value)
        elif field in options:
            return None  # given twice: the app's rules decide
        else:
            options[field] = value
    if any(value == "" for key, value in options.items() if key not in _REPEATED):
        return None  # an empty value is the app's to interpret
    if "parallel" in options:
        try:
            options["parallel"] = int(options["parallel"])
        except ValueError:
            return None
    if not args:
        return None
    verb, rest = args[0], args[1:]
    if verb == "up":
        found = _up_arguments(rest)
    elif verb == "down":
        found = _down_arguments(rest)
    elif verb == "ps":
        found = _ps_arguments(rest)
    elif verb in ("stop", "start", "restart"):
        found = _services_and_timeout(rest, timeout=verb != "start")
    else:
        return None
    return None if found is None else (options, verb, found)


def _up_arguments(args: list[str]) -> dict[str, Any] | None:
    detach = False
    services: list[str] = []
    for arg in args:
        if arg in ("-d", "--detach"):
            detach = True
        elif arg.startswith("-"):
            return None
        else:
            services.append(arg)
    # Without -d, `up` attaches to the logs: left to the app, with all of its options.
    return {"services": services or None, "detach": True} if detach else None


def _down_arguments(args: list[str]) -> dict[str, Any] | None:
    found: dict[str, Any] = {"volumes": False, "remove_orphans": False, "timeout": None}
    rest = list(args)
    while rest:
        name, equals, value = rest.pop(0).partition("=")
        if name in ("-v", "--volumes") and not equals:
            found["volumes"] = True
        elif name == "--remove-orphans" and not equals:
            found["remove_orphans"] = True
        elif name in ("-t", "--timeout"):
            timeout = _timeout(name, equals, value, rest)
            if timeout is None:
                return None
            found["timeout"] = timeout
        else:
            return None
    return found


def _timeout(name: str, equals: str, value: str, rest: list[str]) -> float | None:
    """The value of ``-t N``, ``--timeout N`` or ``--timeout=N`` (taking N from ``rest``), or
    None when it is spelt otherwise or is no number."""
    if equals and name != "--timeout":
        return None
    if not equals:
        if not rest:
            return None
        value = rest.pop(0)
    try:
        return float(value)
    except ValueError:
        return None


def _services_and_timeout(args: list[str], timeout: bool) -> dict[str, Any] | None:
    """``stop``/``restart`` (``timeout``) and ``start``: service names, and ``-t N``."""
    found: dict[str, Any] = {"services": None}
    if timeout:
        found["timeout"] = None
    services: list[str] = []
    rest = list(args)
    while rest:
        name, equals, value = rest.pop(0).partition("=")
        if timeout and name in ("-t", "--timeout"):
            given = _timeout(name, equals, value, rest)
            if given is None:
                return None
            found["timeout"] = given
        elif name.startswith("-") or equals:
            return None
        else:
            services.append(name)
    found["services"] = services or None
    return found


def _ps_arguments(args: list[str]) -> dict[str, Any] | None:
    found: dict[str, Any] = {
        "services": None,
        "all_": False,
        "format_": "table",
        "quiet": False,
        "list_services": False,
    }
    flags = {"-a": "all_", "--all": "all_", "-q": "quiet", "--quiet": "quiet", "--services": "list_services"}
    services: list[str] = []
    rest = list(args)
    while rest:
        name, equals, value = rest.pop(0).partition("=")
        if name in flags and not equals:
            found[flags[name]] = True
        elif name == "--format":
            if not equals:
                if not rest:
                    return None
                value = rest.pop(0)
            found["format_"] = value
        elif name.startswith("-") or equals:
            return None
        else:
            services.append(name)
    found["services"] = services or None
    return found


def run(argv: Sequence[str]) -> int | None:
    """Run the command line if it is in this path's subset and return its exit code; None if
    it is not (nothing was done: the typer app takes it)."""
    parsed = parse(argv)
    if parsed is None:
        return None
    given, verb, arguments = parsed
    from orchestrator.cli.lifecycle import set_ansi, set_progress
    from orchestrator.cli.options import GlobalOptions, PlainContext, report_error
    from orchestrator.errors import OrcError, UsageError

    try:
        # What the app's callback does with the global options.
        progress = given.get("progress", "auto")
        ansi = given.get("ansi", "auto")
        set_progress(progress)
        set_ansi(ansi)
        parallel = given.get("parallel", -1)
        if parallel == 0 or parallel < -1:
            raise UsageError(f"invalid --parallel {parallel}: -1 (unlimited) or at least 1")
        options = GlobalOptions(
            files=given["files"],
            project_name=given.get("project_name"),
            project_directory=given.get("project_directory"),
            profiles=given["profiles"],
            env_files=given["env_files"],
            root=given.get("root") or os.environ.get("ORC_ROOT") or None,
            progress=progress,
            ansi=ansi,
            parallel=None if parallel == -1 else parallel,
        )
        context = PlainContext(options)
        if verb == "up":
            from orchestrator.cli.up import run_up

            run_up(context, **arguments)
        elif verb == "down":
            from orchestrator.cli.down import run_down

            run_down(context, **arguments)
        elif verb == "ps":
            from orchestrator.cli.ps import run_ps

            run_ps(context, **arguments)
        else:
            from orchestrator.cli import stop

            {"stop": stop.run_stop, "start": stop.run_start, "restart": stop.run_restart}[verb](
                context, **arguments
            )
    except OrcError as err:
        return report_error(err)
    except KeyboardInterrupt:
        print("\nAborted!", file=sys.stderr)  # as click ends a command interrupted by Ctrl-C
        return 1
    except BrokenPipeError:
        return 1  # the reader went away (`orc ps | head`): quietly, as click ends then
    return 0
