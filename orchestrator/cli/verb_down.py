"""``orc down``: its options, declared for typer; ``cli.down`` does the work (stop and remove the
project's containers, then its networks, and volumes with -v)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.down import run_down


def register(app: typer.Typer) -> None:
    @app.command("down")
    def down_cmd(
        ctx: typer.Context,
        volumes: Annotated[bool, typer.Option("--volumes", "-v", help="Remove named volumes")] = False,
        remove_orphans: Annotated[
            bool, typer.Option("--remove-orphans", help="Remove orphan containers")
        ] = False,
        timeout: Annotated[
            float | None, typer.Option("--timeout", "-t", help="Shutdown timeout in seconds")
        ] = None,
    ) -> None:
        """Stop and remove containers, networks."""
        run_down(ctx, volumes=volumes, remove_orphans=remove_orphans, timeout=timeout)
