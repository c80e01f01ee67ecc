"""PURE. The two inputs of planning: what the files ask for and what the host has now.

Owned here: :class:`Desired` (a project reduced to what planning compares: per service its config
hash, canonical config, image, replica count and dependencies) and :class:`ObservedState` (a
snapshot of containers, networks, volumes and local images, as the reconciler read it from the
state store and the drivers). The reconciler builds both; :func:`orchestrator.planner.plan.plan_up`
and :func:`~orchestrator.planner.plan.plan_down` compare them.

``Desired`` is kept apart from the loader's model on purpose: planning needs a handful of facts,
and a narrow input keeps the golden tests small and independent of the model's growth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


@dataclass(frozen=True)
class Dependency:
    """One ``depends_on`` entry: wait for ``service`` to reach ``condition`` before starting.

    ``required=False`` lets the dependent start (with a warning) if the dependency is missing or
    fails; ``restart=True`` restarts the dependent after the dependency is recreated or restarted.
    """

    service: str
    condition: str = "service_started"
    required: bool = True
    restart: bool = False

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"unknown depends_on condition {self.condition!r}")


@dataclass(frozen=True)
class DesiredService:
    """A service as planning sees it. ``config`` is the canonical, JSON-able service config that
    ``config_hash`` was computed from; its keys name the causes of a recreate."""

    name: str
    config_hash: str
    image: str
    config: Mapping[str, Any] = field(default_factory=dict)
    replicas: int = 1
    depends_on: tuple[Dependency, ...] = ()
    container_name: str | None = None
    pull_policy: str = "missing"
    networks: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()

    def container_names(self, project: str) -> list[str]:
        """Names of replicas 1..replicas, as Compose v2 names them."""
        if self.container_name:
            return [self.container_name]
        return [container_name(project, self.name, n) for n in range(1, self.replicas + 1)]


@dataclass(frozen=True)
class Desired:
    """The project the files describe. ``networks`` and ``volumes`` are the names orc manages
    (external ones are left out: planning never creates or removes them)."""

    project: str
    services: tuple[DesiredService, ...]
    networks: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()

    def service(self, name: str) -> DesiredService | None:
        for service in self.services:
            if service.name == name:
                return service
        return None


@dataclass(frozen=True)
class ObservedContainer:
    """A container that exists (in the state store, checked against the kernel)."""

    name: str
    service: str
    number: int
    config_hash: str
    status: str
    config: Mapping[str, Any] | None = None
    image: str = ""
    image_digest: str = ""
    exit_code: int | None = None
    one_off: bool = False
    health: str | None = None

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting", "paused")


@dataclass(frozen=True)
class ObservedState:
    """What exists now. ``images`` maps a reference to the digest of the local copy."""

    containers: tuple[ObservedContainer, ...] = ()
    networks: frozenset[str] = frozenset()
    volumes: frozenset[str] = frozenset()
    images: Mapping[str, str] = field(default_factory=dict)

    def of_service(self, service: str) -> list[ObservedContainer]:
        return sorted(
            (c for c in self.containers if c.service == service and not c.one_off), key=lambda c: c.number
        )


def container_name(project: str, service: str, number: int) -> str:
    return f"{project}-{service}-{number}"
