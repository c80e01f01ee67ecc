"""``orc down``: stop and remove the project's containers, then its networks (and volumes with -v).

Works from the files or from ``-p NAME`` alone; the supervisor carries it out and exits.
"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.lifecycle import finish, print_event, project_handle, project_payload


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
        handle, loaded = project_handle(ctx, need_files=False)
        result = handle.down(
            project_payload(loaded) if loaded is not None else None,
            {"volumes": volumes, "remove_orphans": remove_orphans},
            timeout,
            on_event=print_event,
        )
        finish(result)
