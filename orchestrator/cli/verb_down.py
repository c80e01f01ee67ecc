"""``orc down``: stop and remove the project's containers, then its networks (and volumes with -v).

Works from the files or from ``-p NAME`` alone; the supervisor carries it out and exits.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from orchestrator.cli.lifecycle import finish, global_options, print_event, project_handle, project_payload


def print_down_plan(handle: Any, loaded: Any, *, volumes: bool, remove_orphans: bool) -> None:
    """``orc --dry-run down``: what ``down`` would do, action by action, changing nothing.
    (The planner is imported here: every verb module loads at each CLI start.)"""
    from orchestrator.daemon.offline import observe_offline
    from orchestrator.planner.plan import DownOptions, plan_down
    from orchestrator.reconciler.desired import from_loaded

    spec = from_loaded(loaded) if loaded is not None else None
    observed = observe_offline(handle, spec)
    options = DownOptions(volumes=volumes, remove_orphans=remove_orphans)
    plan = plan_down(handle.name, observed, spec.desired if spec is not None else None, options)
    sys.stdout.write(plan.to_text())


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
        if global_options(ctx).dry_run:
            print_down_plan(handle, loaded, volumes=volumes, remove_orphans=remove_orphans)
            return
        result = handle.down(
            project_payload(loaded) if loaded is not None else None,
            {"volumes": volumes, "remove_orphans": remove_orphans},
            timeout,
            on_event=print_event,
        )
        finish(result)
