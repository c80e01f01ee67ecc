"""``orc stop``, ``orc start``, ``orc restart``: their options, declared for typer; ``cli.stop``
does the work (the lifecycle of existing containers, through the supervisor)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.stop import run_restart, run_start, run_stop


def register(app: typer.Typer) -> None:
    @app.command("stop")
    def stop_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
        timeout: Annotated[
            float | None, typer.Option("--timeout", "-t", help="Shutdown timeout in seconds")
        ] = None,
    ) -> None:
        """Stop services."""
        run_stop(ctx, services, timeout=timeout)

    @app.command("start")
    def start_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
    ) -> None:
        """Start services."""
        run_start(ctx, services)

    @app.command("restart")
    def restart_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
        timeout: Annotated[
            float | None, typer.Option("--timeout", "-t", help="Shutdown timeout in seconds")
        ] = None,
    ) -> None:
        """Restart service containers."""
        run_restart(ctx, services, timeout=timeout)
