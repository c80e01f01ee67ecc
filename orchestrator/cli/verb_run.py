"""``orc run``: a one-off container of a service, with another command if given.

The service's dependencies are started first (``--no-deps`` skips them); the container gets no
restart policy and publishes no ports. In the foreground it uses our stdin/stdout/stderr, or a
pseudo-terminal of its own when stdin is a terminal (``-T`` turns that off); its exit code becomes
orc's; ``--rm`` removes it afterwards, ``-d`` prints its name and returns.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from orchestrator.cli.lifecycle import print_event, project_handle, project_payload
from orchestrator.cli.verb_exec import terminal_for
from orchestrator.errors import UsageError


def register(app: typer.Typer) -> None:
    @app.command("run", context_settings={"allow_interspersed_args": False})
    def run_cmd(
        ctx: typer.Context,
        service: Annotated[str, typer.Argument(metavar="SERVICE")],
        command: Annotated[list[str] | None, typer.Argument(metavar="[COMMAND] [ARGS...]")] = None,
        remove: Annotated[bool, typer.Option("--rm", help="Remove the container when it exits")] = False,
        detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background")] = False,
        env: Annotated[
            list[str] | None, typer.Option("--env", "-e", help="Set environment variables")
        ] = None,
        no_deps: Annotated[bool, typer.Option("--no-deps", help="Don't start linked services")] = False,
        no_tty: Annotated[bool, typer.Option("--no-TTY", "-T", help="Disable pseudo-TTY allocation")] = False,
    ) -> None:
        """Run a one-off command on a service."""
        environment: dict[str, str] = {}
        for item in env or []:
            key, sep, value = item.partition("=")
            if not key:
                raise UsageError(f"invalid --env {item!r}: expected KEY=VALUE")
            environment[key] = value if sep else ""
        handle, loaded = project_handle(ctx)
        with terminal_for(not no_tty and not detach) as on_terminal:
            result = handle.request(
                "run",
                start=True,
                on_event=print_event,
                project=project_payload(loaded),
                service=service,
                command=list(command) if command else None,
                environment=environment,
                rm=remove,
                detach=detach,
                no_deps=no_deps,
                tty=on_terminal,
                # In the foreground the container uses our stdin/stdout/stderr directly (or,
                # on a terminal, a pseudo-terminal of its own shuttled to them).
                pass_fds=None if detach else (0, 1, 2),
            )
        if detach:
            typer.echo(result["container"])
            return
        sys.stdout.write(str(result.get("output", "")))
        sys.stdout.flush()
        code = result.get("exit_code")
        if code:
            raise typer.Exit(int(code))
