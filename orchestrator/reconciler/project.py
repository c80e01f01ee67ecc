"""The reconciler's input: what to run, and how each service behaves once running.

Owned here: :class:`ServiceBehaviour` (health check, restart policy, stop signal and grace period,
log options: what the executor and supervisor need beyond what the planner compares) and
:class:`ProjectSpec` (the planner's ``Desired`` plus a behaviour per service). ``reconciler.desired``
builds a ProjectSpec from the loader's model; tests build them by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.planner.observed import Desired
from orchestrator.planner.restart import RestartPolicy
from orchestrator.reconciler.health import HealthCheck
from orchestrator.state.logs import LogOptions


@dataclass(frozen=True)
class ServiceBehaviour:
    """``healthcheck`` is the service's own; without one the image's HEALTHCHECK applies (unless
    ``healthcheck_disabled``), with the service's ``healthcheck_timings`` over the image's."""

    healthcheck: HealthCheck | None = None
    healthcheck_disabled: bool = False
    healthcheck_timings: Mapping[str, float | int] = field(default_factory=dict)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    stop_signal: str = "SIGTERM"
    stop_grace_period: float = 10.0
    log_options: LogOptions = field(default_factory=LogOptions)
    source: object | None = None


@dataclass(frozen=True)
class ProjectSpec:
    """``networks``: the Compose definition (``model.Network``) of each network, by its full name."""

    desired: Desired
    behaviours: Mapping[str, ServiceBehaviour] = field(default_factory=dict)
    working_dir: str = ""
    config_files: tuple[str, ...] = ()
    networks: Mapping[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.desired.project

    def behaviour(self, service: str) -> ServiceBehaviour:
        return self.behaviours.get(service) or ServiceBehaviour()
