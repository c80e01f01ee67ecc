"""The `orc` typer application: global options, verb registration and error mapping.

Every verb lives in its own module under ``orchestrator.cli`` and exposes ``register(app)``;
this module imports them, parses the global options into :class:`GlobalOptions` (stored on the
click context) and maps :class:`~orchestrator.errors.OrcError` to one line on stderr and the
error's exit code. Heavy modules are imported inside the verbs, not here, to keep cold start small.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator import __version__
from orchestrator.cli.entry import requested_verb
from orchestrator.cli.options import global_options as global_options
from orchestrator.cli.options import report_error
from orchestrator.errors import OrcError, UsageError

app = typer.Typer(
    name="orc",
    help="orc: run the Compose files you already have, with no daemon and no runc.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


# Verbs that change something and cannot yet say what they would do (`--dry-run` refuses them);
# `up`, `create`, `down`, `stop`, `start`, `restart` and `rm` print their plan, the others only read.
CHANGING_WITHOUT_DRY_RUN = frozenset(
    {
        "run",
        "exec",
        "kill",
        "pause",
        "unpause",
        "cp",
        "pull",
        "lock",
        "image",
        "wait",
    }
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    file: Annotated[
        list[str] | None, typer.Option("--file", "-f", metavar="FILE", help="Compose configuration files")
    ] = None,
    project_name: Annotated[
        str | None, typer.Option("--project-name", "-p", metavar="NAME", help="Project name")
    ] = None,
    project_directory: Annotated[
        str | None,
        typer.Option(
            "--project-directory",
            metavar="DIR",
            help="Alternate working directory (default: the first file's)",
        ),
    ] = None,
    profile: Annotated[
        list[str] | None, typer.Option("--profile", metavar="PROFILE", help="Profile to enable")
    ] = None,
    env_file: Annotated[
        list[str] | None, typer.Option("--env-file", metavar="FILE", help="Alternate environment file")
    ] = None,
    root: Annotated[
        str | None,
        typer.Option(
            "--root", metavar="DIR", envvar="ORC_ROOT", help="State root (default /run/orc, /var/lib/orc)"
        ),
    ] = None,
    progress: Annotated[
        str,
        typer.Option(
            "--progress", metavar="MODE", help="Set type of progress output (auto, tty, plain, json, quiet)"
        ),
    ] = "auto",
    ansi: Annotated[
        str,
        typer.Option(
            "--ansi",
            metavar="MODE",
            help='Control when to print ANSI control characters ("never"|"always"|"auto")',
        ),
    ] = "auto",
    parallel: Annotated[
        int, typer.Option("--parallel", metavar="N", help="Control max parallelism, -1 for unlimited")
    ] = -1,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Execute command in dry run mode (up, create, down, stop, start, restart, rm; read-only verbs)",
        ),
    ] = False,
) -> None:
    from orchestrator.cli.lifecycle import use_global_options

    options = use_global_options(
        files=list(file or []),
        project_name=project_name,
        project_directory=project_directory,
        profiles=list(profile or []),
        env_files=list(env_file or []),
        root=root,
        progress=progress,
        ansi=ansi,
        parallel=parallel,
        dry_run=dry_run,
    )
    if dry_run and ctx.invoked_subcommand in CHANGING_WITHOUT_DRY_RUN:
        raise UsageError(
            f"--dry-run is not supported by {ctx.invoked_subcommand} (up, create, down, stop, start, restart and rm print their plan)"
        )
    ctx.obj = options


@app.command("version")
def version_cmd(
    short: Annotated[bool, typer.Option("--short", help="Shows only the version number")] = False,
) -> None:
    """Show the orc version information."""
    if short:
        typer.echo(__version__)
    else:
        typer.echo(f"orc version v{__version__}")


def _register_verbs() -> None:
    import importlib
    import pkgutil

    package_dir = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(package_dir)]), key=lambda i: i.name):
        if info.name.startswith("verb_"):
            module = importlib.import_module(f"orchestrator.cli.{info.name}")
            module.register(app)


_register_verbs()


# The command-line pre-scan lives with the entry point, which runs it before typer is imported.
_requested_verb = requested_verb


def _app_for(argv: list[str]) -> typer.Typer:
    """An app holding only the requested verb, or the whole app (help, unknown verbs).

    Turning typer's declarations into click commands costs ~2 ms per verb; building only the one
    being run keeps every command's cold start ~50 ms shorter.
    """
    verb = requested_verb(argv)
    commands = [c for c in app.registered_commands if c.name == verb]
    groups = [g for g in app.registered_groups if g.name == verb]
    if not commands and not groups:
        return app
    slim = typer.Typer()
    slim.info = app.info
    slim.pretty_exceptions_enable = app.pretty_exceptions_enable
    slim.rich_markup_mode = app.rich_markup_mode
    slim._add_completion = app._add_completion
    slim.registered_callback = app.registered_callback
    slim.registered_commands = commands
    slim.registered_groups = groups
    return slim


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning OrcError into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        _app_for(args)(args=args, prog_name="orc")
    except OrcError as err:
        sys.exit(report_error(err))
    except KeyboardInterrupt:
        sys.exit(130)
