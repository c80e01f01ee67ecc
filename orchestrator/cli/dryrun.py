"""``--dry-run`` for ``stop``, ``start``, ``restart`` and ``rm``: the plan the supervisor would run,
computed from the recorded state and printed as ``orc plan`` prints one; nothing is changed and no
supervisor is started. Called by ``cli.stop`` and ``verb_kill`` (``rm``); ``cli.down`` prints
``down``'s plan the same way.

The plans come from the planner's ``plan_stop``/``plan_start``/``plan_restart``/``plan_remove``,
the same functions the reconciler executes, so what is printed is what would run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from orchestrator.errors import UsageError


def print_plan(
    handle: Any, loaded: Any, verb: str, services: Sequence[str], *, stop_first: bool = False
) -> None:
    """Print what ``verb`` (stop, start, restart or rm) would do to ``services`` (all when empty)."""
    from orchestrator.daemon.offline import observe_offline
    from orchestrator.planner.plan import plan_remove, plan_restart, plan_start, plan_stop
    from orchestrator.reconciler.desired import from_loaded

    spec = from_loaded(loaded) if loaded is not None else None
    observed = observe_offline(handle, spec)
    if verb == "stop":
        plan = plan_stop(handle.name, observed, spec.desired if spec is not None else None, services)
    elif verb == "rm":
        plan = plan_remove(handle.name, observed, services, stop_first)
    elif spec is None:
        raise UsageError(f"{verb} needs the project's files")
    elif verb == "start":
        plan = plan_start(spec.desired, observed, services)
    elif verb == "restart":
        plan = plan_restart(spec.desired, observed, services)
    else:  # pragma: no cover - the callers pass one of the four
        raise UsageError(f"--dry-run is not supported by {verb}")
    sys.stdout.write(plan.to_text())
