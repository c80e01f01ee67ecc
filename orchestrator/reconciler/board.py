"""The live view of a project's containers that dependency gates wait on.

Owned here: :class:`ContainerBoard` (status, health and exit code per container, with a change
signal) and :func:`gate_verdict`, which decides whether a ``depends_on`` condition holds, cannot
hold any more, or needs more waiting. The executor updates the board on every transition and
waits on it before a gated start; ``ps`` style views may read it too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import anyio

from orchestrator.planner.plan import Gate

OK, WAIT, FAIL = "ok", "wait", "fail"


@dataclass(frozen=True)
class ContainerView:
    name: str
    service: str
    number: int
    status: str
    health: str | None = None
    has_healthcheck: bool = False
    exit_code: int | None = None
    started: bool = False
    one_off: bool = False


class ContainerBoard:
    def __init__(self) -> None:
        self._views: dict[str, ContainerView] = {}
        self._changed = anyio.Event()

    def get(self, name: str) -> ContainerView | None:
        return self._views.get(name)

    def of_service(self, service: str) -> list[ContainerView]:
        return sorted(
            (v for v in self._views.values() if v.service == service and not v.one_off),
            key=lambda v: v.number,
        )

    def put(self, view: ContainerView) -> None:
        self._views[view.name] = view
        self._notify()

    def update(self, name: str, **changes: Any) -> None:
        view = self._views.get(name)
        if view is not None:
            self._views[name] = replace(view, **changes)
            self._notify()

    def remove(self, name: str) -> None:
        if self._views.pop(name, None) is not None:
            self._notify()

    async def wait_change(self) -> None:
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


def gate_verdict(gate: Gate, views: list[ContainerView]) -> tuple[str, str]:
    """(OK | WAIT | FAIL, why) for ``gate`` given the dependency's containers."""
    if not views:
        return FAIL, f"dependency {gate.service} has no containers"
    if gate.condition == "service_started":
        if any(v.started or v.status in ("running", "restarting") for v in views):
            return OK, f"{gate.service} started"
        return WAIT, f"waiting for {gate.service} to start"
    if gate.condition == "service_healthy":
        for v in views:
            if not v.has_healthcheck:
                return FAIL, f"dependency {gate.service}: container {v.name} has no healthcheck configured"
            if v.health == "unhealthy":
                return FAIL, f"dependency failed to start: container {v.name} is unhealthy"
            if v.status == "exited" and v.started:
                return FAIL, f"dependency failed to start: container {v.name} exited ({v.exit_code})"
        if all(v.health == "healthy" and v.status == "running" for v in views):
            return OK, f"{gate.service} healthy"
        return WAIT, f"waiting for {gate.service} to be healthy"
    # service_completed_successfully
    for v in views:
        if v.status == "exited" and v.started and v.exit_code not in (0, None):
            return FAIL, f"service {gate.service} didn't complete successfully: exit {v.exit_code}"
    if all(v.status == "exited" and v.exit_code == 0 for v in views):
        return OK, f"{gate.service} completed successfully"
    return WAIT, f"waiting for {gate.service} to complete"
