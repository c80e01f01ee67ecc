"""The ``orc`` entry point: boots ``up``'s supervisor before the CLI itself has loaded.

Owned here: :func:`main` (the console script and ``python -m orchestrator``), the command-line
pre-scan that finds the verb and the global options without typer (:func:`requested_verb`,
:func:`scan_global_options`) and the early supervisor boot for ``up``.

Why: a cold ``up`` waits for two interpreters, the CLI (typer, click and the loader: ~0.1 s
before it can even guess the project) and the supervisor (~0.25 s of imports). Started from
here, before typer is imported, the supervisor boots while the CLI imports and loads, on the
other CPU. The guess of the project's name (``-p``, ``COMPOSE_PROJECT_NAME``, the files'
``name:``, the directory) may be wrong or impossible: ``up`` then starts the right supervisor
itself and tells the wrong one to exit, as it does for a guess of its own; one that nobody
claimed (a usage error, ``--help``) is told to exit when the CLI does.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# The global options that take a value, and the GlobalOptions field each one sets.
GLOBAL_OPTION_FIELDS = {
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
GLOBAL_OPTIONS_WITH_VALUE = frozenset(GLOBAL_OPTION_FIELDS)

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")

# `up` options after which the CLI must not start anything before it checked the files.
_NO_EARLY_BOOT = frozenset({"--dry-run", "--locked", "--help", "-h"})


def requested_verb(argv: Sequence[str]) -> str | None:
    """The verb named on the command line, skipping the global options and their values."""
    at = _verb_index(argv)
    return None if at is None else argv[at]


def _verb_index(argv: Sequence[str]) -> int | None:
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in GLOBAL_OPTIONS_WITH_VALUE:
            index += 2
        elif not arg.startswith("-"):
            return index
        else:
            index += 1
    return None


# Docker Compose's boolean flags also take a value in Go's syntax (`ps --orphans=false`); click's
# flags take none. The flags spelled anew for each verb (flag: its true and its false spelling),
# and the words Go's strconv.ParseBool reads.
_VALUED_FLAGS = {"ps": {"--orphans": ("--orphans", "--no-orphans")}}
_BOOL_WORDS = {
    **dict.fromkeys(("1", "t", "T", "true", "TRUE", "True"), True),
    **dict.fromkeys(("0", "f", "F", "false", "FALSE", "False"), False),
}


def spell_flag_values(argv: Sequence[str]) -> list[str]:
    """The command line with ``ps --orphans=false`` as ``ps --no-orphans`` (and ``=true`` as
    ``--orphans``), for the typer app and ``cli.fast`` alike; anything else as it is (a word
    Go would refuse is left for click to refuse)."""
    args = list(argv)
    at = _verb_index(args)
    spellings = _VALUED_FLAGS.get(args[at]) if at is not None else None
    if at is None or not spellings:
        return args
    for index in range(at + 1, len(args)):
        name, equals, value = args[index].partition("=")
        if equals and name in spellings and value in _BOOL_WORDS:
            args[index] = spellings[name][0 if _BOOL_WORDS[value] else 1]
    return args


class ScannedOptions:
    """The global options that name the project, as far as a pre-scan can tell. (A plain class:
    this module runs before the supervisor is started, and ``dataclasses`` costs ~8 ms.)"""

    def __init__(self, root: str | None = None) -> None:
        self.files: list[str] = []
        self.project_name: str | None = None
        self.project_directory: str | None = None
        self.root = root


def scan_global_options(argv: Sequence[str]) -> ScannedOptions:
    """The global options before the verb (``-f X``, ``--file=X``, ``-p``, ``--project-directory``,
    ``--root``); ``ORC_ROOT`` when ``--root`` is not given."""
    found = ScannedOptions(root=os.environ.get("ORC_ROOT") or None)
    args = list(argv)
    index = 0
    while index < len(args):
        arg = args[index]
        name, equals, value = arg.partition("=")
        if not arg.startswith("-"):
            break  # the verb: its own options follow
        if name in GLOBAL_OPTIONS_WITH_VALUE and not equals:
            value = args[index + 1] if index + 1 < len(args) else ""
            index += 1
        index += 1
        if name in ("-f", "--file"):
            found.files.append(value)
        elif name in ("-p", "--project-name"):
            found.project_name = value
        elif name == "--project-directory":
            found.project_directory = value
        elif name == "--root":
            found.root = value
    return found


_UNSURE = "\0unsure"
_TOP_LEVEL_NAME = re.compile(r"^name[ \t]*:(.*)$", re.M)
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.$ -]*")


def top_level_name(text: str) -> str | None:
    """The value of a top-level ``name:`` key of a Compose file read as plain text (the last
    one: later documents and files override), None if there is none, ``_UNSURE`` when the
    value is more than a plain or quoted scalar on its line (an anchor, a flow or block value,
    an escape). A scan instead of a YAML parser: ``import yaml`` alone costs ~13 ms before the
    supervisor can be started, and a wrong guess only costs that early supervisor."""
    found = None
    for match in _TOP_LEVEL_NAME.finditer(text):
        value = match.group(1).strip()
        if " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if "\\" in value or "'" in value or '"' in value:
                return _UNSURE
        elif not _PLAIN_VALUE.fullmatch(value):
            return _UNSURE
        found = value or None
        if found is None:
            return _UNSURE  # `name:` with the value on the next lines
    return found


def guess_project_name(
    project_name: str | None, files: Sequence[str], project_directory: str | None
) -> str | None:
    """The project name, cheaply and without the loader, or None when unsure: ``-p``, then
    ``COMPOSE_PROJECT_NAME``, then the last ``name:`` of the files, then the project directory
    (the first file's). Normalised as Compose does; a name still holding ``$`` is no guess."""
    if project_name:
        name = project_name
    elif os.environ.get("COMPOSE_PROJECT_NAME"):
        name = os.environ["COMPOSE_PROJECT_NAME"]
    else:
        paths = [os.path.abspath(f) for f in files]
        if not paths:
            found = next((f for f in DEFAULT_FILES if os.path.exists(f)), None)
            if found is None:
                return None
            paths = [os.path.abspath(found)]
        named = None
        for path in paths:
            try:
                with open(path) as handle:
                    value = top_level_name(handle.read())
            except (OSError, UnicodeDecodeError):
                return None
            if value is _UNSURE:
                return None
            named = value or named
        name = named or os.path.basename(os.path.abspath(project_directory or os.path.dirname(paths[0])))
    if "$" in name:
        return None  # interpolated: only the loader knows
    name = re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")
    return name or None


class EarlyBoot:
    """A supervisor started before the CLI loaded: for ``project``, under ``run_root``."""

    def __init__(self, project: str, run_root: Path, finish: Callable[[], Path]) -> None:
        self.project = project
        self.run_root = run_root
        self.finish = finish
        self.claimed = False


_early: EarlyBoot | None = None


def claim_early_boot(project: str, run_root: Path) -> Callable[[], Path] | None:
    """The waiting call of the supervisor booted early for ``project`` under ``run_root``, if
    there is one (once); the caller then owns it (and the project lock it holds)."""
    global _early
    boot = _early
    if boot is None or boot.claimed or boot.project != project or boot.run_root != run_root:
        return None
    boot.claimed = True
    return boot.finish


def _boot_early(argv: Sequence[str]) -> None:
    global _early
    if requested_verb(argv) != "up" or any(a in _NO_EARLY_BOOT for a in argv):
        return
    options = scan_global_options(argv)
    try:
        name = guess_project_name(options.project_name, options.files, options.project_directory)
    except Exception:  # any surprise here is the loader's to report, with its own message
        return
    if name is None:
        return
    # Only the standard library's basics are imported on this path (not the state store, the
    # protocol or dataclasses): the supervisor starts ~35 ms sooner.
    from orchestrator.daemon.spawn import begin_early, roots_for

    run_root, lib_root = roots_for(options.root)
    try:
        finish = begin_early(run_root, lib_root, name, os.environ.get("ORC_CGROUP_PREFIX") or "orc")
    except OSError:
        return  # e.g. not root: the verb itself reports it
    if finish is None:
        return  # one runs already, or another orc is changing the project
    _early = EarlyBoot(name, run_root, finish)
    atexit.register(_release_unclaimed)


def _release_unclaimed() -> None:
    """The CLI ends without having used the early supervisor: tell it to exit."""
    boot = _early
    if boot is None or boot.claimed:
        return
    boot.claimed = True
    from orchestrator.daemon.client import call

    with contextlib.suppress(Exception):
        call(boot.finish(), "exit")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``orc``, ``orchestrator``, ``python -m orchestrator``).

    The process ends through :func:`exit_now`: once the command is done nothing is left to
    free, and the interpreter's own teardown (every module's objects) cost ~20 ms per command.
    """
    args = spell_flag_values(sys.argv[1:] if argv is None else argv)
    _boot_early(args)
    try:
        from orchestrator.cli.fast import run as run_without_typer

        code = run_without_typer(args)
        if code is None:
            from orchestrator.cli.app import main as app_main

            app_main(args)
            code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    exit_now(code)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # what SystemExit("message") prints
    return 1


def exit_now(code: int) -> None:
    """Flush stdout and stderr, run the ``atexit`` handlers, and end the process at once."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`orc logs | head`)
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(code)
