"""The frozen description of a whole Compose project: services plus the top-level networks,
volumes, secrets and configs they refer to.

Built by ``orchestrator.stack.bind`` from the canonical document; the reconciler reads it to
create networks and volumes and start services, the CLI to list things. Keys of the mappings
are the names used in the file (``back-tier``); ``name`` fields are the real names
(``vote_back-tier``, or the ``name:`` given, or the external object's name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.errors import NotFoundError
from orchestrator.model.frozen import EMPTY, FrozenDict, compact_repr
from orchestrator.model.service import Service


@dataclass(frozen=True, slots=True)
class IPAMPool:
    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None
    aux_addresses: FrozenDict[str, str] = EMPTY


@dataclass(frozen=True, slots=True)
class IPAMConfig:
    driver: str | None = None
    pools: tuple[IPAMPool, ...] = ()
    options: FrozenDict[str, str] = EMPTY


@dataclass(frozen=True, slots=True)
class Network:
    key: str
    name: str
    driver: str | None = None
    driver_opts: FrozenDict[str, str] = EMPTY
    ipam: IPAMConfig = IPAMConfig()
    external: bool = False
    internal: bool = False
    attachable: bool = False
    enable_ipv4: bool | None = None
    enable_ipv6: bool | None = None
    labels: FrozenDict[str, str] = EMPTY
    extensions: FrozenDict[str, Any] = EMPTY


@dataclass(frozen=True, slots=True)
class Volume:
    key: str
    name: str
    driver: str | None = None
    driver_opts: FrozenDict[str, str] = EMPTY
    external: bool = False
    labels: FrozenDict[str, str] = EMPTY
    extensions: FrozenDict[str, Any] = EMPTY


@dataclass(frozen=True, slots=True)
class FileObject:
    """A top-level secret or config: its content comes from ``file`` (absolute path),
    ``environment`` (a variable name) or inline ``content``; ``external`` ones exist elsewhere."""

    key: str
    name: str
    file: str | None = None
    environment: str | None = None
    content: str | None = None
    external: bool = False
    labels: FrozenDict[str, str] = EMPTY
    driver: str | None = None
    driver_opts: FrozenDict[str, str] = EMPTY
    template_driver: str | None = None
    extensions: FrozenDict[str, Any] = EMPTY


@dataclass(frozen=True, slots=True, repr=False)
class Stack:
    """One Compose project. ``services`` keeps the document's order (sorted by name in
    ``docker-compose config`` output); use ``planner.graph`` for dependency order."""

    name: str
    working_dir: str | None = None
    compose_files: tuple[str, ...] = ()
    services: FrozenDict[str, Service] = EMPTY
    networks: FrozenDict[str, Network] = EMPTY
    volumes: FrozenDict[str, Volume] = EMPTY
    secrets: FrozenDict[str, FileObject] = EMPTY
    configs: FrozenDict[str, FileObject] = EMPTY
    extensions: FrozenDict[str, Any] = EMPTY
    unsupported: FrozenDict[str, Any] = EMPTY

    def __repr__(self) -> str:
        return compact_repr(self)

    def service(self, name: str) -> Service:
        """The service called ``name``; NotFoundError naming the known ones otherwise."""
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(sorted(self.services)) or "none"
            raise NotFoundError(f'no such service: "{name}" (services: {known})') from None

    def unsupported_keys(self) -> list[str]:
        """Every key orc does not model, as dotted paths from the document root, sorted."""
        found = list(self.unsupported)
        for name, service in self.services.items():
            found.extend(f"services.{name}.{key}" for key in service.unsupported)
        return sorted(found)
