"""``orc ps``: its options, declared for typer; ``cli.ps`` does the work (the project's containers
from the recorded state, as a table or JSON lines)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.ps import run_ps, status_filter

__all__ = ["register", "status_filter"]


def register(app: typer.Typer) -> None:
    @app.command("ps")
    def ps_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
        all_: Annotated[bool, typer.Option("--all", "-a", help="Show all stopped containers")] = False,
        format_: Annotated[str, typer.Option("--format", help="table or json")] = "table",
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only display IDs")] = False,
        list_services: Annotated[bool, typer.Option("--services", help="Display services")] = False,
        status: Annotated[
            list[str] | None,
            typer.Option(
                "--status",
                metavar="STATUS",
                help="Filter services by status: created|running|paused|restarting|removing|exited|dead",
            ),
        ] = None,
        filter_: Annotated[
            list[str] | None,
            typer.Option("--filter", metavar="status=STATUS", help="Filter services by a property"),
        ] = None,
        no_trunc: Annotated[
            bool, typer.Option("--no-trunc", help="Don't truncate output (orc never truncates)")
        ] = False,
        orphans: Annotated[
            bool,
            typer.Option(
                "--orphans/--no-orphans",
                help="Include orphaned services (not declared by project); --orphans=false also works",
            ),
        ] = True,
    ) -> None:
        """List containers."""
        run_ps(
            ctx,
            services,
            all_=all_,
            format_=format_,
            quiet=quiet,
            list_services=list_services,
            status=status,
            filter_=filter_,
            no_trunc=no_trunc,
            orphans=orphans,
        )
