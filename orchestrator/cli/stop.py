"""The behaviour of ``orc stop``, ``orc start`` and ``orc restart``, without typer (``verb_stop``
declares their options).

``stop`` stops dependents before their dependencies; ``start`` starts existing containers in
dependency order (it creates nothing); ``restart`` does both. All go through the supervisor;
with the global ``--dry-run`` they print their plan instead (``cli.dryrun``).
"""

from __future__ import annotations

from orchestrator.cli.lifecycle import finish, global_options, print_event, project_handle, project_payload
from orchestrator.cli.options import CommandContext


def run_stop(ctx: CommandContext, services: list[str] | None = None, *, timeout: float | None = None) -> None:
    """``orc stop`` once its command line is parsed (by typer, or by ``cli.fast``)."""
    handle, loaded = project_handle(ctx, need_files=False)
    if global_options(ctx).dry_run:
        from orchestrator.cli.dryrun import print_plan

        print_plan(handle, loaded, "stop", services or [])
        return
    project = project_payload(loaded) if loaded is not None else None
    finish(
        handle.request(
            "stop", services=list(services or []), timeout=timeout, project=project, on_event=print_event
        )
    )


def run_start(ctx: CommandContext, services: list[str] | None = None) -> None:
    """``orc start`` once its command line is parsed."""
    handle, loaded = project_handle(ctx)
    if global_options(ctx).dry_run:
        from orchestrator.cli.dryrun import print_plan

        print_plan(handle, loaded, "start", services or [])
        return
    finish(
        handle.request(
            "start",
            start=True,
            services=list(services or []),
            project=project_payload(loaded),
            on_event=print_event,
        )
    )


def run_restart(
    ctx: CommandContext, services: list[str] | None = None, *, timeout: float | None = None
) -> None:
    """``orc restart`` once its command line is parsed."""
    handle, loaded = project_handle(ctx)
    if global_options(ctx).dry_run:
        from orchestrator.cli.dryrun import print_plan

        print_plan(handle, loaded, "restart", services or [])
        return
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
