"""The behaviour of ``orc stop``, ``orc start`` and ``orc restart``, without typer (``verb_stop``
declares their options).

``stop`` stops dependents before their dependencies; ``start`` starts existing containers in
dependency order (it creates nothing); ``restart`` does both. All go through the supervisor;
with the global ``--dry-run`` they print their plan instead (``cli.dryrun``).
"""

from __future__ import annotations

from typing import Any

from orchestrator.cli.lifecycle import finish, global_options, print_event, project_handle, project_payload
from orchestrator.cli.options import CommandContext


def run_stop(ctx: CommandContext, services: list[str] | None = None, *, timeout: float | None = None) -> None:
    """``orc stop`` once its command line is parsed (by typer, or by ``cli.fast``)."""
    _run(ctx, "stop", services, need_files=False, timeout=timeout)


def run_start(ctx: CommandContext, services: list[str] | None = None) -> None:
    """``orc start`` once its command line is parsed."""
    _run(ctx, "start", services, start=True)


def run_restart(
    ctx: CommandContext, services: list[str] | None = None, *, timeout: float | None = None
) -> None:
    """``orc restart`` once its command line is parsed."""
    _run(ctx, "restart", services, start=True, timeout=timeout)


def _run(
    ctx: CommandContext,
    verb: str,
    services: list[str] | None,
    *,
    need_files: bool = True,
    start: bool = False,
    timeout: float | None = None,
) -> None:
    """Send ``verb`` to the supervisor (``start``: starting one if none runs), or with the global
    ``--dry-run`` print its plan. ``start`` takes no timeout; ``stop`` and ``restart`` pass theirs."""
    handle, loaded = project_handle(ctx, need_files=need_files)
    if global_options(ctx).dry_run:
        from orchestrator.cli.dryrun import print_plan

        print_plan(handle, loaded, verb, services or [])
        return
    arguments: dict[str, Any] = {
        "services": list(services or []),
        "project": project_payload(loaded) if loaded is not None else None,
        "on_event": print_event,
    }
    if start:
        arguments["start"] = True
    if verb != "start":
        arguments["timeout"] = timeout
    finish(handle.request(verb, **arguments))
