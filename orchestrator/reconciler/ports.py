"""What the reconciler needs from the drivers, as one narrow Protocol, and the data it passes.

Owned here: :class:`ContainerRuntime` (images, networks, volumes, containers, exec: the only side
effects the executor and supervisor perform besides the state store) and its request/result
types. The real implementation is the adapter over ``runtime/*`` (``reconciler.adapter``); the
recording fake is ``reconciler.fake.FakeRuntime``. Every method maps its own failures into
``TemporaryError`` (worth retrying) or ``PermanentError``.

Container lifecycle across these calls: ``create`` prepares everything that outlives a process
(root filesystem, log file, cgroup parents); ``start`` makes a new process in new namespaces,
puts it into its cgroups, wires its network and releases it (also used to restart an exited
container); ``wait`` returns when that process exits; ``stop`` signals and waits, killing after
the grace period; ``remove`` deletes what ``create`` made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.state.records import ContainerRecord, EndpointRecord


@dataclass(frozen=True)
class ContainerRequest:
    """Create container ``name`` (replica ``number`` of ``service``) from the service's config.
    ``source`` is the loader's model object for the service, for the real adapter to translate."""

    project: str
    name: str
    service: str
    number: int
    image: str
    config: Mapping[str, object]
    source: object | None = None
    one_off: bool = False
    # Real network names, in the order of the service's networks by priority.
    networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class CreatedContainer:
    """``healthcheck`` is the image's HEALTHCHECK in Compose's shape (durations in seconds)."""

    container_id: str
    image_digest: str = ""
    rootfs: str | None = None
    log_path: str | None = None
    cgroup_dirs: tuple[str, ...] = ()
    healthcheck: Mapping[str, object] | None = None


@dataclass(frozen=True)
class StartedContainer:
    """``ports`` are the published ports as bound: ``host_ip:host_port->target/protocol``."""

    pid: int
    pid_start_time: int | None
    networks: tuple[EndpointRecord, ...] = ()
    ports: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int
    oom_killed: bool = False


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str = ""
    timed_out: bool = False


@dataclass(frozen=True)
class ExecRequest:
    """``orc exec``: what to run and the caller's three stdio file descriptors."""

    argv: tuple[str, ...]
    stdio: tuple[int, int, int]
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    privileged: bool = False
    # A pseudo-terminal: the caller's stdin/stdout are shuttled to and from its master end.
    tty: bool = False


@dataclass(frozen=True)
class ImageOptions:
    """How images are fetched, from the CLI's side: the registry variables of its environment
    (``DOCKER_CONFIG``, ``ORC_INSECURE_REGISTRIES``, ``ORC_CERTS_DIR``; the supervisor never reads
    its own) and home directory, which the runtime turns into registry options with
    ``options_from_environment``, and the directory relative ``oci:`` sources are read from (the
    project directory). JSON-able, since it travels in the ``up`` request."""

    environment: Mapping[str, str] = field(default_factory=dict)
    home: str | None = None
    base_dir: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"environment": dict(self.environment), "home": self.home, "base_dir": self.base_dir}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageOptions:
        environment = data.get("environment") or {}
        return cls(
            environment={str(k): str(v) for k, v in environment.items()},
            home=data.get("home"),
            base_dir=data.get("base_dir"),
        )


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    driver_name: str
    subnet: str | None = None
    gateway: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


class ContainerRuntime(Protocol):
    async def local_images(self, references: Sequence[str]) -> dict[str, str]:
        """Digest of the local copy of each reference that is present."""
        ...

    async def pull(self, image: str) -> str:
        """Fetch ``image`` (for the ``platform:`` of the services using it); return its digest."""
        ...

    async def configure_images(self, options: ImageOptions) -> None:
        """Use these registry settings and archive base directory for later pulls."""
        ...

    async def create_network(self, project: str, name: str) -> NetworkInfo: ...
    async def remove_network(self, project: str, name: str) -> None: ...
    async def create_volume(self, project: str, name: str) -> None: ...
    async def remove_volume(self, project: str, name: str) -> None: ...
    async def create(self, request: ContainerRequest) -> CreatedContainer: ...
    def prepare(self, record: ContainerRecord) -> None:
        """Begin, in the background, what the next :meth:`start` of this created container does
        short of letting its process run; that start waits for it and then releases the process.
        Asked for right after a create whose start is in the same plan, before that start's
        dependencies are up. :meth:`settle` undoes a preparation that no start took."""
        ...

    async def start(self, record: ContainerRecord) -> StartedContainer: ...
    async def wait(self, record: ContainerRecord) -> ExitStatus: ...
    async def stop(self, record: ContainerRecord, signal: str, timeout: float) -> None: ...
    async def kill(self, record: ContainerRecord, signal: str) -> None: ...
    async def remove(self, record: ContainerRecord, keep_anonymous_volumes: bool = False) -> None:
        """Delete the container; with ``keep_anonymous_volumes`` (a recreate) its anonymous
        volumes go to the container created next under the same name. Its process record,
        namespace and cgroups are gone when this returns, and its directory is set aside; the
        rest (that directory's deletion, its network's teardown) may still be going on:
        :meth:`settle` waits for it."""
        ...

    async def settle(self) -> dict[str, str]:
        """Wait until what the removes before left to finish is done; what failed of it, by
        container name (each failure is reported once). Undo the preparations no start took."""
        ...

    async def exec(self, record: ContainerRecord, argv: Sequence[str], timeout: float) -> ExecResult: ...

    async def exec_attached(self, record: ContainerRecord, request: ExecRequest) -> int:
        """Run a process in the container with the caller's stdin/stdout/stderr; its exit code."""
        ...

    def attach_next_start(self, name: str, stdio: tuple[int, int, int]) -> None:
        """The next start of ``name`` uses these stdin/stdout/stderr instead of the log pipes."""
        ...

    def use_terminal(self, name: str) -> None:
        """The next attached start of ``name`` gets a pseudo-terminal, shuttled to those fds."""
        ...

    async def pause(self, record: ContainerRecord) -> None:
        """Freeze every process of the container (cgroup freezer)."""
        ...

    async def unpause(self, record: ContainerRecord) -> None: ...

    async def top(self, record: ContainerRecord) -> list[tuple[int, str]]:
        """(host pid, command line) of every process in the container."""
        ...

    def port(self, record: ContainerRecord, target: int, protocol: str) -> list[str]:
        """Host addresses (``ip:port``) publishing the container's ``target`` port."""
        ...

    def describe(self, project: str, service: str, source: object | None, networks: tuple[str, ...]) -> None:
        """The definition of ``service`` (the model object) and its real network names, for
        containers created by an earlier supervisor."""
        ...

    def describe_networks(self, project: str, networks: Mapping[str, object]) -> None:
        """The Compose definitions (``model.Network``) of the project's networks, by full name:
        what ``create_network`` builds (subnets, internal, IPv6, driver options) or refuses."""
        ...

    def alive(self, record: ContainerRecord) -> bool:
        """Is the recorded process (pid + start time) still running?"""
        ...
