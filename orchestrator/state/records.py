"""Versioned state records: what orc remembers about a project and each of its containers.

Owned here: the record dataclasses, their JSON form and the schema version. The stores in
``state.store`` persist them; the reconciler writes them after every transition and reads them to
observe (and, after a supervisor restart, to adopt running containers by pid + start time).

Records are plain data (strings, ints, lists, dicts) so the state layer needs nothing from the
Compose-facing layers. A record written by a newer orc (higher ``version``) is refused rather than
half-read; older versions are upgraded field by field in ``_upgrade``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from orchestrator.errors import PermanentError

SCHEMA_VERSION = 1

# Container lifecycle states, as Docker names them (``docker ps --format '{{.State}}'``).
CONTAINER_STATUSES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")


class StateVersionError(PermanentError):
    """A state file was written by a newer orc, or is not a state record at all."""


@dataclass
class EndpointRecord:
    """One network attachment of a container, as the network driver reported it."""

    network: str
    interface: str = ""
    ipv4: str | None = None
    ipv6: str | None = None
    mac: str | None = None
    aliases: list[str] = field(default_factory=list)


@dataclass
class ContainerRecord:
    """Everything needed to observe, adopt and tear down one container.

    ``pid_start_time`` is field 22 of ``/proc/<pid>/stat`` (clock ticks since boot) at the time the
    container was started: together with ``pid`` it identifies the process even after the pid is
    reused. ``config_hash`` is the service configuration hash the container was created from.
    """

    project: str
    name: str
    service: str
    number: int
    container_id: str
    config_hash: str
    image: str = ""
    image_digest: str = ""
    status: str = "created"
    pid: int | None = None
    pid_start_time: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    restart_count: int = 0
    one_off: bool = False
    # A one-off (`run`) answers to its service's DNS names and aliases only with --use-aliases.
    use_aliases: bool = False
    health: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    networks: list[EndpointRecord] = field(default_factory=list)
    cgroup_dirs: list[str] = field(default_factory=list)
    rootfs: str | None = None
    log_path: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # Published ports as bound by the last start: "127.0.0.1:8080->80/tcp".
    ports: list[str] = field(default_factory=list)
    # The canonical service config the container was created from, so a later plan can name
    # what changed (``config changed: environment.FOO``), not only that the hash differs.
    config: dict[str, Any] | None = None
    version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data. Nested values are shared, not copied (the stores only
        serialise it): ``asdict`` deep-copied ``config`` on every save, ~1 ms per write."""
        data = dict(vars(self))
        data["networks"] = [dict(vars(n)) for n in self.networks]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerRecord:
        data = _upgrade(dict(data), "container")
        networks = [EndpointRecord(**_known(EndpointRecord, n)) for n in data.pop("networks", [])]
        record = cls(**_known(cls, data))
        record.networks = networks
        if record.status not in CONTAINER_STATUSES:
            raise StateVersionError(f"container {record.name}: unknown status {record.status!r}")
        return record


@dataclass
class NetworkRecord:
    """A network orc created for the project (so `down` removes exactly what `up` made)."""

    name: str
    driver_name: str
    subnet: str | None = None
    gateway: str | None = None
    external: bool = False


@dataclass
class ProjectRecord:
    """The project as last applied: where its files are, its supervisor, its networks and volumes."""

    name: str
    working_dir: str = ""
    config_files: list[str] = field(default_factory=list)
    supervisor_pid: int | None = None
    supervisor_start_time: int | None = None
    socket_path: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    networks: list[NetworkRecord] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProjectRecord:
        data = _upgrade(dict(data), "project")
        networks = [NetworkRecord(**_known(NetworkRecord, n)) for n in data.pop("networks", [])]
        record = cls(**_known(cls, data))
        record.networks = networks
        return record


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Keep the keys ``cls`` has; an older orc reading a file with extra keys ignores them."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _upgrade(data: dict[str, Any], kind: str) -> dict[str, Any]:
    version = data.get("version")
    if not isinstance(version, int):
        raise StateVersionError(f"{kind} state record has no integer 'version'")
    if version > SCHEMA_VERSION:
        raise StateVersionError(
            f"{kind} state record has version {version}, this orc understands up to {SCHEMA_VERSION}"
            " (written by a newer orc?)"
        )
    # Version 1 is the first; later versions add their upgrade steps here, oldest first.
    data["version"] = SCHEMA_VERSION
    return data
