"""The behaviour of ``orc down``, without typer (``verb_down`` declares its options).

Works from the files or from ``-p NAME`` alone; the supervisor carries it out and exits.
"""

from __future__ import annotations

import sys
from typing import Any

from orchestrator.cli.lifecycle import finish, global_options, print_event, project_handle, project_payload
from orchestrator.cli.options import CommandContext


def print_down_plan(handle: Any, loaded: Any, *, volumes: bool, remove_orphans: bool) -> None:
    """``orc --dry-run down``: what ``down`` would do, action by action, changing nothing."""
    from orchestrator.daemon.offline import observe_offline
    from orchestrator.planner.plan import DownOptions, plan_down
    from orchestrator.reconciler.desired import from_loaded

    spec = from_loaded(loaded) if loaded is not None else None
    observed = observe_offline(handle, spec)
    options = DownOptions(volumes=volumes, remove_orphans=remove_orphans)
    plan = plan_down(handle.name, observed, spec.desired if spec is not None else None, options)
    sys.stdout.write(plan.to_text())


def run_down(
    ctx: CommandContext, *, volumes: bool = False, remove_orphans: bool = False, timeout: float | None = None
) -> None:
    """``orc down`` once its command line is parsed (by typer, or by ``cli.fast``)."""
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
