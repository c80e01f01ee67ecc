"""Shared set-up for reconciler tests: a three-tier project, a fake runtime, virtual time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from orchestrator.planner.observed import Dependency, Desired, DesiredService
from orchestrator.planner.restart import RestartPolicy
from orchestrator.reconciler.clock import VirtualClock
from orchestrator.reconciler.events import EventBus
from orchestrator.reconciler.fake import FakeRuntime, ProcessScript
from orchestrator.reconciler.health import HealthCheck
from orchestrator.reconciler.project import ProjectSpec, ServiceBehaviour
from orchestrator.reconciler.reconciler import Reconciler
from orchestrator.state.store import MemoryStateStore

IMAGES = {"postgres:16": "sha256:p1", "app:1": "sha256:a1", "nginx:1": "sha256:n1", "busybox:1": "sha256:b1"}


def service(name: str, image: str, config: dict[str, Any] | None = None, **kw: Any) -> DesiredService:
    config = {"image": image, **(config or {})}
    return DesiredService(
        name=name,
        image=image,
        config=config,
        config_hash=f"h-{sorted(config.items())!r}",
        networks=("demo_default",),
        **kw,
    )


def three_tier(api_env: str = "db", web_restart: str = "no") -> ProjectSpec:
    db = service("db", "postgres:16", volumes=("demo_data",))
    api = service(
        "api", "app:1", {"environment": {"DB": api_env}}, depends_on=(Dependency("db", "service_healthy"),)
    )
    web = service("web", "nginx:1", depends_on=(Dependency("api", restart=True),))
    return ProjectSpec(
        Desired("demo", (db, api, web), networks=("demo_default",), volumes=("demo_data",)),
        behaviours={
            "db": ServiceBehaviour(healthcheck=HealthCheck(("CMD", "pg_isready"), interval=1.0, timeout=1.0)),
            "web": ServiceBehaviour(restart=RestartPolicy.from_compose(web_restart)),
        },
    )


@dataclass
class World:
    clock: VirtualClock
    runtime: FakeRuntime
    store: MemoryStateStore
    bus: EventBus
    reconciler: Reconciler
    timeline: list[tuple[float, str]] = field(default_factory=list)

    def at(self, prefix: str) -> list[float]:
        """Virtual times (relative to the start) of the calls starting with ``prefix``."""
        return [round(t, 3) for t, line in self.timeline if line.startswith(prefix)]

    def events(self, action: str | None = None) -> list[str]:
        return [f"{e.action} {e.name}" for e in self.bus.history if action is None or e.action == action]


def run_world(
    body: Callable[[World], Awaitable[None]],
    *,
    scripts: dict[str, ProcessScript] | None = None,
    images: dict[str, str] | None = None,
    concurrency: int = 8,
    store: MemoryStateStore | None = None,
) -> World:
    clock = VirtualClock()
    start = clock.now()
    runtime = FakeRuntime(
        clock, images=images if images is not None else dict(IMAGES), registry=dict(IMAGES), scripts=scripts
    )
    bus = EventBus()
    bus.keep_history = True
    store = store or MemoryStateStore()
    world = World(
        clock,
        runtime,
        store,
        bus,
        Reconciler(runtime, store, clock=clock, bus=bus, wall=clock.now, concurrency=concurrency),
    )
    runtime.on_call = lambda line: world.timeline.append((clock.now() - start, line))

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.autojump)
            async with world.reconciler.session():
                with anyio.fail_after(5):  # real seconds: a hang is a bug, not a slow test
                    await body(world)
            group.cancel_scope.cancel()

    anyio.run(main)
    return world
