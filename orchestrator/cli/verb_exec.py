"""``orc exec``: run a command in a running service container, through its supervisor.

Non-interactive: the command's output (stdout and stderr together) is printed when it ends and
its exit code becomes orc's.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from orchestrator.cli.lifecycle import project_handle
from orchestrator.errors import UsageError


def register(app: typer.Typer) -> None:
    @app.command("exec", context_settings={"allow_interspersed_args": False})
    def exec_cmd(
        ctx: typer.Context,
        service: Annotated[str, typer.Argument(metavar="SERVICE")],
        command: Annotated[list[str], typer.Argument(metavar="COMMAND [ARGS...]")],
        index: Annotated[int, typer.Option("--index", help="Index of the container")] = 1,
        no_tty: Annotated[bool, typer.Option("--no-TTY", "-T", help="Disable pseudo-TTY allocation")] = False,
        detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background")] = False,
    ) -> None:
        """Execute a command in a running container."""
        if detach:
            raise UsageError("exec --detach is not supported yet")
        handle, _ = project_handle(ctx, need_files=False)
        record = handle.container_for(service, index)
        result = handle.request("exec", container=record.name, argv=list(command))
        sys.stdout.write(str(result.get("output", "")))
        sys.stdout.flush()
        code = int(result.get("exit_code", 0))
        if code:
            raise typer.Exit(code)
