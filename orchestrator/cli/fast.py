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
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from orchestrator.cli.entry import GLOBAL_OPTION_FIELDS

_REPEATED = frozenset({"files", "profiles", "env_files"})


class _Verb(NamedTuple):
    """What this path takes of a verb's command line: flag options (name → argument), options
    with a value (name → argument and its conversion), whether service names follow, the
    arguments' values when not given, and the flags that must be given."""

    flags: dict[str, str]
    values: dict[str, tuple[str, Callable[[str], Any]]]
    services: bool
    defaults: dict[str, Any]
    required: tuple[str, ...] = ()
    negations: tuple[tuple[str, str], ...] = ()  # (flag, argument) pairs that set it to False


_TIMEOUT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "-t": ("timeout", float),
    "--timeout": ("timeout", float),
}
_VERBS = {
    # Without -d, `up` attaches to the logs: left to the app, with all of its options.
    "up": _Verb({"-d": "detach", "--detach": "detach"}, {}, True, {"detach": False}, ("detach",)),
    "down": _Verb(
        {"-v": "volumes", "--volumes": "volumes", "--remove-orphans": "remove_orphans"},
        _TIMEOUT,
        False,
        {"volumes": False, "remove_orphans": False, "timeout": None},
    ),
    "ps": _Verb(
        {
            "-a": "all_",
            "--all": "all_",
            "-q": "quiet",
            "--quiet": "quiet",
            "--services": "list_services",
            "--orphans": "orphans",
        },
        {"--format": ("format_", str)},
        True,
        {"all_": False, "format_": "table", "quiet": False, "list_services": False, "orphans": True},
        negations=(("--no-orphans", "orphans"),),
    ),
    "stop": _Verb({}, _TIMEOUT, True, {"timeout": None}),
    "start": _Verb({}, {}, True, {}),
    "restart": _Verb({}, _TIMEOUT, True, {"timeout": None}),
}


def _option_value(name: str, equals: str, value: str, rest: list[str]) -> str | None:
    """An option's value: ``--name=value``, or the next argument (taken from ``rest``); None
    for ``-n=value`` (the app reads that its own way) or when nothing follows."""
    if equals:
        return value if name.startswith("--") else None
    return rest.pop(0) if rest else None


def parse(argv: Sequence[str]) -> tuple[dict[str, Any], str, dict[str, Any]] | None:
    """``(global options, verb, the verb's arguments)`` for a command line in the subset this
    path takes, else None."""
    options: dict[str, Any] = {"files": [], "profiles": [], "env_files": []}
    args = list(argv)
    while args and args[0].startswith("-"):
        name, equals, value = args.pop(0).partition("=")
        field = GLOBAL_OPTION_FIELDS.get(name)
        given = None if field is None else _option_value(name, equals, value, args)
        if field is None or given is None:
            return None
        if field in _REPEATED:
            options[field].append(given)
        elif field in options:
            return None  # given twice: the app's rules decide
        else:
            options[field] = given
    if any(value == "" for key, value in options.items() if key not in _REPEATED):
        return None  # an empty value is the app's to interpret
    if "parallel" in options:
        try:
            options["parallel"] = int(options["parallel"])
        except ValueError:
            return None
    if not args or args[0] not in _VERBS:
        return None
    found = _verb_arguments(_VERBS[args[0]], args[1:])
    return None if found is None else (options, args[0], found)


def _verb_arguments(verb: _Verb, args: list[str]) -> dict[str, Any] | None:
    found = dict(verb.defaults)
    services: list[str] = []
    rest = list(args)
    while rest:
        name, equals, value = rest.pop(0).partition("=")
        if name in verb.flags and not equals:
            found[verb.flags[name]] = True
        elif name in (negated := dict(verb.negations)) and not equals:
            found[negated[name]] = False
        elif name in verb.values:
            key, convert = verb.values[name]
            given = _option_value(name, equals, value, rest)
            if given is None:
                return None
            try:
                found[key] = convert(given)
            except ValueError:
                return None
        elif name.startswith("-") or equals or not verb.services:
            return None
        else:
            services.append(name)
    if verb.services:
        found["services"] = services or None
    if not all(found[flag] for flag in verb.required):
        return None
    return found


def run(argv: Sequence[str]) -> int | None:
    """Run the command line if it is in this path's subset and return its exit code; None if
    it is not (nothing was done: the typer app takes it)."""
    parsed = parse(argv)
    if parsed is None:
        return None
    given, verb, arguments = parsed
    from orchestrator.cli.lifecycle import use_global_options
    from orchestrator.cli.options import PlainContext, report_error
    from orchestrator.errors import OrcError

    try:
        options = use_global_options(
            files=given["files"],
            project_name=given.get("project_name"),
            project_directory=given.get("project_directory"),
            profiles=given["profiles"],
            env_files=given["env_files"],
            root=given.get("root") or os.environ.get("ORC_ROOT") or None,
            progress=given.get("progress", "auto"),
            ansi=given.get("ansi", "auto"),
            parallel=given.get("parallel", -1),
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
