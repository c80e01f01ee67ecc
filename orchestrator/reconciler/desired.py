"""Translate a loaded Compose project into the reconciler's input.

Owned here: :func:`project_spec`, which turns the loader's project (its frozen ``Stack`` and the
canonical document) into a :class:`~orchestrator.reconciler.project.ProjectSpec`: per service the
planner's :class:`~orchestrator.planner.observed.DesiredService` (config hash, the hash-relevant
canonical config, image, replicas, dependencies, networks and volumes by their real names) and a
:class:`~orchestrator.reconciler.project.ServiceBehaviour` (health check, restart policy, stop
signal and grace period, log rotation, and the model ``Service`` itself for the runtime adapter).

``x-orc: {rootfs: DIR}`` on a service runs it from a plain directory (relative to the project
directory) instead of an image; its image reference becomes ``rootfs:<absolute dir>``, which the
runtime adapter reports as always present; ``rootfs: host`` runs it on the host's own userland
(see :mod:`orchestrator.reconciler.hostroot`). Called by the supervisor and the ``plan`` verb.
:func:`pin_images` applies ``up --locked``: services run the digests of ``compose.lock``.
"""

from __future__ import annotations

import os.path
from collections.abc import Mapping
from dataclasses import replace as dataclass_replace
from typing import Any

from orchestrator.errors import StackError, UsageError
from orchestrator.model import Service, Stack, freeze, thaw
from orchestrator.model.frozen import FrozenDict
from orchestrator.planner.observed import Dependency, Desired, DesiredService
from orchestrator.planner.restart import RestartPolicy
from orchestrator.reconciler import hostroot
from orchestrator.reconciler.health import HealthCheck
from orchestrator.reconciler.payload import document_payload as document_payload
from orchestrator.reconciler.project import ProjectSpec, ServiceBehaviour
from orchestrator.reconciler.stackrefs import REFS_KEY, resolve_refs
from orchestrator.state.logs import LogOptions

ROOTFS_PREFIX = "rootfs:"
# The image reference of a service with ``build:`` and no image (orc does not build images).
BUILD_PREFIX = "build-only:"
# Keys Compose leaves out of the config hash; leaving them out here too keeps causes honest.
_NOT_HASHED = ("build", "pull_policy", "scale", "depends_on", "profiles")


def from_loaded(project: Any) -> ProjectSpec:
    """The spec of a project returned by ``orchestrator.stack.loader.load``."""
    if project.stack is None:
        raise StackError("the loader did not bind this project to the model")
    extensions = {
        name: record.get("#extensions") or {}
        for name, record in (project.records.get("services") or {}).items()
        if isinstance(record, Mapping)
    }
    return project_spec(
        project.name,
        project.stack,
        project.document,
        project.working_dir,
        tuple(project.files),
        extensions,
        environment=project.environment,
    )


def from_document(payload: Mapping[str, Any]) -> ProjectSpec:
    """The spec of a project the CLI already loaded and sent as its canonical document (with
    the config hashes and ``x-*`` keys per service): binding it is much cheaper than loading."""
    from orchestrator.stack.bind import bind

    files = tuple(payload.get("files") or ())
    stack = bind(
        payload["document"],
        config_hashes=payload["config_hashes"],
        working_dir=payload.get("working_dir"),
        compose_files=files,
    )
    return project_spec(
        payload["name"],
        stack,
        payload["document"],
        payload["working_dir"],
        files,
        payload.get("extensions"),
        environment=payload.get("file_environment") or {},
    )


def project_spec(
    name: str,
    stack: Stack,
    document: Mapping[str, Any],
    working_dir: str,
    files: tuple[str, ...] = (),
    extensions: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    environment: Mapping[str, str] | None = None,
) -> ProjectSpec:
    """The reconciler's view of ``stack`` (``document`` is the canonical ``config`` output;
    ``extensions`` the ``x-*`` keys per service where the model does not carry them;
    ``environment`` the project's variables, for secrets and configs read from one)."""
    extensions = extensions or {}
    documents = document.get("services") or {}
    services: list[DesiredService] = []
    behaviours: dict[str, ServiceBehaviour] = {}
    managed_networks: set[str] = set()
    managed_volumes: set[str] = set()
    for service_name in sorted(stack.services):
        service = stack.services[service_name]
        networks = _network_names(stack, service)
        volumes = _volume_names(stack, service)
        managed_networks.update(n for n in networks if not _external_network(stack, n))
        managed_volumes.update(v for v in volumes if not _external_volume(stack, v))
        services.append(
            DesiredService(
                name=service_name,
                config_hash=service.config_hash,
                image=image_reference(service, working_dir, extensions.get(service_name)),
                config=_hashed_config(documents.get(service_name) or {}),
                replicas=service.effective_replicas,
                depends_on=tuple(
                    Dependency(dep, d.condition, d.required, d.restart)
                    for dep, d in sorted(service.depends_on.items())
                ),
                container_name=service.container_name,
                pull_policy=service.pull_policy or "missing",
                networks=tuple(networks),
                volumes=tuple(volumes),
            )
        )
        refs = resolve_refs(stack, service, environment or {})
        # x-* keys the model does not carry (x-orc: probes, ready_log...) travel with the service too.
        carried = freeze(dict(extensions.get(service_name) or {}))
        service = dataclass_replace(
            service, extensions=FrozenDict({**carried, **service.extensions, REFS_KEY: refs})
        )
        behaviours[service_name] = behaviour_of(service)
    desired = Desired(name, tuple(services), tuple(sorted(managed_networks)), tuple(sorted(managed_volumes)))
    definitions = {network.name: network for network in stack.networks.values()}
    return ProjectSpec(desired, behaviours, working_dir=working_dir, config_files=files, networks=definitions)


def pin_images(spec: ProjectSpec, pins: Mapping[str, str]) -> ProjectSpec:
    """``spec`` with each service in ``pins`` running the pinned reference (``name:tag@sha256:…``
    from ``compose.lock``) instead of its ``image:`` as written, so only that digest is looked up
    and pulled. The config hash is untouched: a container already running the same image is kept,
    one running another image of the tag is recreated (``image digest changed``). Services that run
    an ``x-orc`` rootfs keep it."""
    unknown = sorted(set(pins) - {s.name for s in spec.desired.services})
    if unknown:
        raise UsageError(f"the lock pins services the project does not have: {', '.join(unknown)}")
    services = []
    behaviours = dict(spec.behaviours)
    for service in spec.desired.services:
        pinned = pins.get(service.name)
        behaviour = spec.behaviour(service.name)
        source = behaviour.source
        if pinned is None or not isinstance(source, Service) or source.image != service.image:
            services.append(service)
            continue
        services.append(dataclass_replace(service, image=pinned))
        behaviours[service.name] = dataclass_replace(
            behaviour, source=dataclass_replace(source, image=pinned)
        )
    desired = dataclass_replace(spec.desired, services=tuple(services))
    return dataclass_replace(spec, desired=desired, behaviours=behaviours)


def image_reference(service: Service, working_dir: str, extensions: Mapping[str, Any] | None = None) -> str:
    extension = service.orc_extension or (extensions or {}).get("x-orc")
    if isinstance(extension, Mapping) and extension.get("rootfs"):
        rootfs = str(extension["rootfs"])
        if rootfs == hostroot.HOST_VALUE:
            return hostroot.reference_for(working_dir)
        return ROOTFS_PREFIX + os.path.normpath(os.path.join(working_dir, rootfs))
    if not service.image:
        # Not an error for the whole project: pulling this reference fails that service alone.
        return BUILD_PREFIX + service.name
    return service.image


def behaviour_of(service: Service) -> ServiceBehaviour:
    policy = service.effective_restart_policy
    restart = RestartPolicy(
        mode=policy.name,
        max_attempts=policy.max_retries or None,
        delay=policy.delay,
        window=policy.window or None,
    )
    healthcheck = None
    timings: dict[str, float | int] = {}
    if service.healthcheck is not None:
        check = service.healthcheck
        timings = {
            key: value
            for key, value in (
                ("interval", check.interval),
                ("timeout", check.timeout),
                ("start_period", check.start_period),
                ("start_interval", check.start_interval),
                ("retries", check.retries),
            )
            if value is not None
        }
    if service.healthcheck is not None and not service.healthcheck.disabled and service.healthcheck.test:
        check = service.healthcheck
        healthcheck = HealthCheck.from_compose(
            {
                "test": list(check.test),
                "interval": check.interval,
                "timeout": check.timeout,
                "start_period": check.start_period,
                "start_interval": check.start_interval,
                "retries": check.retries,
            }
        )
    log_options = LogOptions()
    if service.logging is not None and service.logging.options:
        log_options = LogOptions.from_compose(dict(service.logging.options))
    return ServiceBehaviour(
        healthcheck=healthcheck,
        healthcheck_disabled=service.healthcheck is not None and service.healthcheck.disabled,
        healthcheck_timings=timings,
        restart=restart,
        stop_signal=service.stop_signal or "SIGTERM",
        stop_grace_period=service.effective_stop_grace_period,
        log_options=log_options,
        source=service,
    )


def _hashed_config(document: Mapping[str, Any]) -> dict[str, Any]:
    config = {k: thaw(v) for k, v in document.items() if k not in _NOT_HASHED}
    deploy = config.get("deploy")
    if isinstance(deploy, dict):
        config["deploy"] = {k: v for k, v in deploy.items() if k != "replicas"}
    return config


def _network_names(stack: Stack, service: Service) -> list[str]:
    if service.network_mode and service.network_mode not in ("bridge", "default"):
        return []
    return [stack.networks[key].name for key in service.networks_by_priority() if key in stack.networks]


def _volume_names(stack: Stack, service: Service) -> list[str]:
    names = []
    for mount in service.volumes:
        if mount.type == "volume" and mount.source and mount.source in stack.volumes:
            names.append(stack.volumes[mount.source].name)
    return sorted(set(names))


def _external_network(stack: Stack, name: str) -> bool:
    return any(n.name == name and n.external for n in stack.networks.values())


def _external_volume(stack: Stack, name: str) -> bool:
    return any(v.name == name and v.external for v in stack.volumes.values())
