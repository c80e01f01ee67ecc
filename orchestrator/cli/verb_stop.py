"""``orc stop``, ``orc start``, ``orc restart``: the lifecycle of existing containers.

``stop`` stops dependents before their dependencies; ``start`` starts existing containers in
dependency order (it creates nothing); ``restart`` does both. All go through the supervisor.
"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.lifecycle import finish, print_event, project_handle, project_payload


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
        handle, loaded = project_handle(ctx, need_files=False)
        project = project_payload(loaded) if loaded is not None else None
        finish(
            handle.request(
                "stop", services=list(services or []), timeout=timeout, project=project, on_event=print_event
            )
        )

    @app.command("start")
    def start_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
    ) -> None:
        """Start services."""
        handle, loaded = project_handle(ctx)
        finish(
            handle.request(
                "start",
                start=True,
                services=list(services or []),
                project=project_payload(loaded),
                on_event=print_event,
            )
        )

    @app.command("restart")
    def restart_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
        timeout: Annotated[
            float | None, typer.Option("--timeout", "-t", help="Shutdown timeout in seconds")
        ] = None,
    ) -> None:
        """Restart service containers."""
        handle, loaded = project_handle(ctx)
        finish(
            handle.request(
                "restart",
                start=True,
                services=list(services or []),
                timeout=timeout,
                project=project_payload(loaded),
                on_event=print_event,
            )
        )
