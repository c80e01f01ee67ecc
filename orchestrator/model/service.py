"""The frozen description of one Compose service, in canonical long form.

Every runtime-relevant key of a service has a typed field here; units are already converted
(durations in float seconds, sizes in int bytes, file modes as ints). A field is ``None`` (or
empty) when the file did not set it, so consumers can tell "unset" from "set to the default".
Keys orc does not model land in ``Service.unsupported`` under their dotted path (``"develop"``,
``"build.ssh"``) so that ``up`` can name them instead of ignoring them silently; ``x-*`` keys are
kept in ``Service.extensions``.

Built by ``orchestrator.stack.bind``; read by the planner, the reconciler (which translates a
Service into the runtime drivers' own small specs) and the CLI. The ``effective_*`` helpers
apply Docker Compose's precedence rules between overlapping keys (``scale`` vs
``deploy.replicas``, ``mem_limit`` vs ``deploy.resources.limits.memory``, ``restart`` vs
``deploy.restart_policy``) so that no consumer re-implements them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.model.frozen import EMPTY, FrozenDict, compact_repr
from orchestrator.model.units import parse_duration

MountType = Literal["bind", "volume", "tmpfs", "npipe", "image", "cluster"]
DependencyCondition = Literal["service_started", "service_healthy", "service_completed_successfully"]
RestartName = Literal["no", "always", "on-failure", "unless-stopped"]

DEFAULT_STOP_GRACE_PERIOD = 10.0
"""Seconds between the stop signal and SIGKILL when ``stop_grace_period`` is not set (Docker's)."""


@dataclass(frozen=True, slots=True)
class PortSpec:
    """One published or exposed port, long form. ``published`` may be a range (``"8000-8010"``)
    or None (a random host port); ``host_ip`` None means all addresses."""

    target: int
    published: str | None = None
    host_ip: str | None = None
    protocol: str = "tcp"
    mode: str = "ingress"
    name: str | None = None
    app_protocol: str | None = None

    def published_range(self) -> tuple[int, int] | None:
        """The host port range as (first, last), or None when the host port is chosen at random."""
        if not self.published:
            return None
        first, _, last = self.published.partition("-")
        return int(first), int(last or first)


@dataclass(frozen=True, slots=True)
class BindOptions:
    """``create_host_path``: make a missing source directory. The short syntax (``./d:/d``)
    implies it; in the long syntax it defaults to False (Compose omits it from JSON when False)."""

    propagation: str | None = None
    create_host_path: bool = False
    selinux: str | None = None
    recursive: str | None = None


@dataclass(frozen=True, slots=True)
class VolumeOptions:
    nocopy: bool = False
    subpath: str | None = None
    labels: FrozenDict[str, str] = EMPTY


@dataclass(frozen=True, slots=True)
class TmpfsOptions:
    """``size`` in bytes; ``mode`` as an int (``0o1777``); ``options`` are further mount options
    from the short ``tmpfs:`` syntax (``noexec``, ``uid=1000``), in file order."""

    size: int | None = None
    mode: int | None = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Mount:
    """One entry of ``volumes:`` (or ``tmpfs:``). ``source`` is an absolute host path for bind
    mounts, the volume key in the file for named volumes, and None for anonymous volumes and
    tmpfs; the options object matching ``type`` is set, the others are None."""

    type: MountType
    target: str
    source: str | None = None
    read_only: bool = False
    consistency: str | None = None
    bind: BindOptions | None = None
    volume: VolumeOptions | None = None
    tmpfs: TmpfsOptions | None = None
    image_subpath: str | None = None


@dataclass(frozen=True, slots=True)
class NetworkAttachment:
    """How a service joins one network (the value under ``services.X.networks.NET``)."""

    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    mac_address: str | None = None
    priority: int = 0
    gw_priority: int = 0
    interface_name: str | None = None
    link_local_ips: tuple[str, ...] = ()
    driver_opts: FrozenDict[str, str] = EMPTY


@dataclass(frozen=True, slots=True)
class Dependency:
    """One ``depends_on`` entry. ``restart``: restart this service when the dependency is
    restarted by a compose operation. ``required: False``: the dependency may be absent."""

    condition: DependencyCondition = "service_started"
    required: bool = True
    restart: bool = False


@dataclass(frozen=True, slots=True)
class Healthcheck:
    """``test`` is the canonical list (``["CMD", ...]``, ``["CMD-SHELL", "..."]`` or ``["NONE"]``),
    empty when only timings are given (the image's test is kept). Durations in seconds."""

    test: tuple[str, ...] = ()
    interval: float | None = None
    timeout: float | None = None
    start_period: float | None = None
    start_interval: float | None = None
    retries: int | None = None
    disable: bool = False

    @property
    def disabled(self) -> bool:
        return self.disable or self.test[:1] == ("NONE",)


@dataclass(frozen=True, slots=True)
class DeviceRequest:
    """A ``deploy.resources.reservations.devices`` entry (GPUs and the like)."""

    capabilities: tuple[str, ...] = ()
    driver: str | None = None
    count: int | None = None
    device_ids: tuple[str, ...] = ()
    options: FrozenDict[str, str] = EMPTY


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """``deploy.resources.limits`` or ``.reservations``: cpus as a fraction of CPUs, memory in bytes."""

    cpus: float | None = None
    memory: int | None = None
    pids: int | None = None
    devices: tuple[DeviceRequest, ...] = ()


@dataclass(frozen=True, slots=True)
class DeployRestartPolicy:
    """``deploy.restart_policy``; ``condition`` as written (``none``, ``on-failure``, ``any``)."""

    condition: str | None = None
    delay: float | None = None
    max_attempts: int | None = None
    window: float | None = None


@dataclass(frozen=True, slots=True)
class Deploy:
    mode: str | None = None
    replicas: int | None = None
    labels: FrozenDict[str, str] = EMPTY
    limits: ResourceSpec | None = None
    reservations: ResourceSpec | None = None
    restart_policy: DeployRestartPolicy | None = None


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """The restart policy a container actually gets, after Compose's precedence rules.

    ``max_retries`` 0 means unlimited (Docker's ``MaximumRetryCount``). ``delay`` and ``window``
    come from ``deploy.restart_policy`` only (Docker ignores them outside Swarm; orc's restart
    tracker may use them)."""

    name: RestartName = "no"
    max_retries: int = 0
    delay: float | None = None
    window: float | None = None


@dataclass(frozen=True, slots=True)
class Ulimit:
    soft: int
    hard: int


@dataclass(frozen=True, slots=True)
class Device:
    """A ``devices:`` entry: host path, container path, cgroup permissions (``rwm``)."""

    source: str
    target: str
    permissions: str = "rwm"


@dataclass(frozen=True, slots=True)
class ExtraHost:
    """One ``extra_hosts`` line for /etc/hosts."""

    hostname: str
    address: str


@dataclass(frozen=True, slots=True)
class Logging:
    driver: str | None = None
    options: FrozenDict[str, str] = EMPTY


@dataclass(frozen=True, slots=True)
class ThrottleDevice:
    """A blkio rate limit: bytes per second (``*_bps``) or operations per second (``*_iops``)."""

    path: str
    rate: int


@dataclass(frozen=True, slots=True)
class WeightDevice:
    path: str
    weight: int


@dataclass(frozen=True, slots=True)
class BlkioConfig:
    weight: int | None = None
    weight_device: tuple[WeightDevice, ...] = ()
    device_read_bps: tuple[ThrottleDevice, ...] = ()
    device_read_iops: tuple[ThrottleDevice, ...] = ()
    device_write_bps: tuple[ThrottleDevice, ...] = ()
    device_write_iops: tuple[ThrottleDevice, ...] = ()


@dataclass(frozen=True, slots=True)
class VolumesFrom:
    """``volumes_from`` entry: a service of this project or (``kind="container"``) any container."""

    source: str
    kind: Literal["service", "container"] = "service"
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class Link:
    """``links`` entry: reach ``service`` under the extra hostname ``alias``."""

    service: str
    alias: str


@dataclass(frozen=True, slots=True)
class FileRef:
    """A service's ``secrets`` or ``configs`` entry. ``target`` None means the default place
    (``/run/secrets/<source>`` for secrets, ``/<source>`` for configs). ``mode`` as an int."""

    source: str
    target: str | None = None
    uid: str | None = None
    gid: str | None = None
    mode: int | None = None

    def container_path(self, kind: Literal["secret", "config"]) -> str:
        """Where the file appears in the container: a relative target is taken below
        ``/run/secrets/`` (secrets) or ``/`` (configs), as Docker Compose does."""
        base = "/run/secrets/" if kind == "secret" else "/"
        target = self.target or self.source
        return target if target.startswith("/") else base + target


@dataclass(frozen=True, slots=True)
class PullPolicy:
    """When to pull the image: ``mode`` is always, never, missing, build or refresh; ``interval``
    (seconds) is how old a pulled image may get under ``refresh`` (``daily``, ``every_12h``)."""

    mode: str = "missing"
    interval: float | None = None


@dataclass(frozen=True, slots=True)
class Build:
    """``build:``; ``context`` is absolute (or a URL). ``args`` values None: declared, unset."""

    context: str
    dockerfile: str | None = None
    dockerfile_inline: str | None = None
    args: FrozenDict[str, str | None] = EMPTY
    target: str | None = None
    labels: FrozenDict[str, str] = EMPTY
    tags: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    network: str | None = None
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    no_cache: bool = False
    pull: bool = False
    shm_size: int | None = None
    extra_hosts: tuple[ExtraHost, ...] = ()
    additional_contexts: FrozenDict[str, str] = EMPTY
    privileged: bool = False


@dataclass(frozen=True, slots=True, repr=False)
class Service:
    """One service of the project. See the module docstring for conventions."""

    name: str
    config_hash: str = ""
    image: str | None = None
    build: Build | None = None
    pull_policy: str | None = None
    platform: str | None = None
    # None: the image's; (): explicitly cleared.
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    # env_file already merged in by the loader; a None value was declared without a value and
    # was not found in the environment: the container does not get it.
    environment: FrozenDict[str, str | None] = EMPTY
    working_dir: str | None = None
    user: str | None = None
    group_add: tuple[str, ...] = ()
    hostname: str | None = None
    domainname: str | None = None
    container_name: str | None = None
    labels: FrozenDict[str, str] = EMPTY
    annotations: FrozenDict[str, str] = EMPTY
    profiles: tuple[str, ...] = ()
    # Storage
    volumes: tuple[Mount, ...] = ()
    tmpfs: tuple[Mount, ...] = ()
    volumes_from: tuple[VolumesFrom, ...] = ()
    secrets: tuple[FileRef, ...] = ()
    configs: tuple[FileRef, ...] = ()
    read_only: bool = False
    shm_size: int | None = None
    storage_opt: FrozenDict[str, str] = EMPTY
    # Network
    networks: FrozenDict[str, NetworkAttachment] = EMPTY
    network_mode: str | None = None
    ports: tuple[PortSpec, ...] = ()
    expose: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()
    external_links: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_opt: tuple[str, ...] = ()
    extra_hosts: tuple[ExtraHost, ...] = ()
    mac_address: str | None = None
    # Lifecycle
    depends_on: FrozenDict[str, Dependency] = EMPTY
    healthcheck: Healthcheck | None = None
    restart: str | None = None
    deploy: Deploy | None = None
    scale: int | None = None
    init: bool | None = None
    stop_signal: str | None = None
    stop_grace_period: float | None = None
    tty: bool = False
    stdin_open: bool = False
    logging: Logging | None = None
    # False: ``up`` does not follow this service's output (``attach: false``).
    attach: bool | None = None
    # Namespaces and security
    pid: str | None = None
    ipc: str | None = None
    uts: str | None = None
    userns_mode: str | None = None
    cgroup: str | None = None
    cgroup_parent: str | None = None
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    sysctls: FrozenDict[str, str] = EMPTY
    ulimits: FrozenDict[str, Ulimit] = EMPTY
    devices: tuple[Device, ...] = ()
    device_cgroup_rules: tuple[str, ...] = ()
    runtime: str | None = None
    # Resources
    mem_limit: int | None = None
    mem_reservation: int | None = None
    memswap_limit: int | None = None
    mem_swappiness: int | None = None
    oom_kill_disable: bool = False
    oom_score_adj: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpu_rt_runtime: int | None = None
    cpu_rt_period: int | None = None
    cpuset: str | None = None
    pids_limit: int | None = None
    blkio_config: BlkioConfig | None = None
    # Kept for whoever asks
    extensions: FrozenDict[str, Any] = EMPTY
    unsupported: FrozenDict[str, Any] = EMPTY

    def __repr__(self) -> str:
        return compact_repr(self)

    # --- Compose's precedence rules -----------------------------------------------------------

    @property
    def effective_replicas(self) -> int:
        """How many containers: ``scale``, else ``deploy.replicas``, else 1 (compose-go GetScale)."""
        if self.scale is not None:
            return self.scale
        if self.deploy is not None and self.deploy.replicas is not None:
            return self.deploy.replicas
        return 1

    @property
    def effective_memory_limit(self) -> int | None:
        """Bytes: ``deploy.resources.limits.memory`` when non-zero, else ``mem_limit``."""
        limits = self.deploy.limits if self.deploy else None
        if limits is not None and limits.memory:
            return limits.memory
        return self.mem_limit or None

    @property
    def effective_memory_reservation(self) -> int | None:
        """Bytes: ``deploy.resources.reservations.memory`` when non-zero, else ``mem_reservation``."""
        reservations = self.deploy.reservations if self.deploy else None
        if reservations is not None and reservations.memory:
            return reservations.memory
        return self.mem_reservation or None

    @property
    def effective_cpus(self) -> float | None:
        """CPUs: ``deploy.resources.limits.cpus`` when non-zero, else ``cpus``."""
        limits = self.deploy.limits if self.deploy else None
        if limits is not None and limits.cpus:
            return limits.cpus
        return self.cpus or None

    @property
    def effective_pids_limit(self) -> int | None:
        """``deploy.resources.limits.pids`` when positive, else ``pids_limit`` (0 means unset)."""
        limits = self.deploy.limits if self.deploy else None
        if limits is not None and limits.pids is not None and limits.pids > 0:
            return limits.pids
        return self.pids_limit or None

    @property
    def effective_restart_policy(self) -> RestartPolicy:
        """``deploy.restart_policy`` wins over ``restart`` when present (Docker Compose's create)."""
        policy = self.deploy.restart_policy if self.deploy else None
        if policy is not None:
            return RestartPolicy(
                name=restart_name(policy.condition or "any"),
                max_retries=policy.max_attempts or 0,
                delay=policy.delay,
                window=policy.window,
            )
        if self.restart:
            name, _, count = self.restart.partition(":")
            return RestartPolicy(name=restart_name(name), max_retries=int(count) if count.isdigit() else 0)
        return RestartPolicy()

    @property
    def effective_pull_policy(self) -> PullPolicy:
        """compose-go's GetPullPolicy: ``if_not_present`` is ``missing``; ``daily``, ``weekly`` and
        ``every_<duration>`` refresh after that long; anything else (or unset) is ``missing``."""
        policy = self.pull_policy or ""
        if policy in ("always", "never", "missing", "build"):
            return PullPolicy(policy)
        if policy == "daily":
            return PullPolicy("refresh", 86400.0)
        if policy == "weekly":
            return PullPolicy("refresh", 7 * 86400.0)
        if policy.startswith("every_"):
            # stack.bind has checked the duration parses.
            return PullPolicy("refresh", parse_duration(policy[len("every_") :]))
        return PullPolicy("missing")

    def image_name(self, project: str) -> str:
        """``image``, or the name Compose tags a build-only service's image with (``proj-web``)."""
        return self.image or f"{project}-{self.name}"

    def container_name_for(self, project: str, number: int) -> str:
        """``container_name``, or Compose's ``<project>-<service>-<number>`` (numbers from 1)."""
        return self.container_name or f"{project}-{self.name}-{number}"

    @property
    def effective_stop_grace_period(self) -> float:
        return DEFAULT_STOP_GRACE_PERIOD if self.stop_grace_period is None else self.stop_grace_period

    def container_environment(self) -> dict[str, str]:
        """The variables a container gets from the file: declared-but-unset ones are left out."""
        return {key: value for key, value in self.environment.items() if value is not None}

    def networks_by_priority(self) -> list[str]:
        """Network keys, highest ``priority`` first, then by name (compose-go NetworksByPriority)."""
        return sorted(self.networks, key=lambda net: (-self.networks[net].priority, net))

    def shared_namespace_service(
        self, namespace: Literal["network", "ipc", "pid", "uts", "cgroup"]
    ) -> str | None:
        """The service whose namespace this one joins (``network_mode: service:db`` → ``db``)."""
        value = {
            "network": self.network_mode,
            "ipc": self.ipc,
            "pid": self.pid,
            "uts": self.uts,
            "cgroup": self.cgroup,
        }[namespace]
        if value and value.startswith("service:"):
            return value[len("service:") :]
        return None

    @property
    def orc_extension(self) -> Any:
        """The value of the ``x-orc`` key, or None."""
        return self.extensions.get("x-orc")


_RESTART_ALIASES: dict[str, RestartName] = {
    "": "no",
    "no": "no",
    "none": "no",
    "always": "always",
    "any": "always",
    "on-failure": "on-failure",
    "unless-stopped": "unless-stopped",
}


def restart_name(condition: str) -> RestartName:
    """Map ``restart:`` / ``deploy.restart_policy.condition`` words to an engine policy name.

    Raises ValueError for words Docker does not know; ``stack.bind`` checks this up front."""
    try:
        return _RESTART_ALIASES[condition]
    except KeyError:
        raise ValueError(
            f'unknown restart policy "{condition}" (expected no, always, on-failure, unless-stopped)'
        ) from None
