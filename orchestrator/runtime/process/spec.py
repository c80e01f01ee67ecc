"""The process runtime's own description of a container: ``ContainerSpec`` and its parts.

This is not Compose. The reconciler translates ``model`` objects into these frozen dataclasses and
hands them to a ``ProcessRuntime`` (``runtime.py``); the fork server (``forkserver.py``) and the
in-child start sequence (``sequence.py``) read them. ``validate_spec`` checks what can be checked
without touching the host (sysctls, namespace combinations, paths) and raises ``PermanentError``.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from enum import Enum

from orchestrator.errors import PermanentError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's defaults (moby oci/defaults.go): paths hidden from the container and paths it may only read.
DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)


class Propagation(Enum):
    PRIVATE = "private"
    RPRIVATE = "rprivate"
    SLAVE = "slave"
    RSLAVE = "rslave"
    SHARED = "shared"
    RSHARED = "rshared"


@dataclass(frozen=True)
class OverlayRootfs:
    """An overlay root: ``lower_dirs`` top-most first (as overlayfs wants), plus writable upper/work.

    ``remove_on_delete`` lets ``delete`` remove the upper and work dirs (the container's changes).
    """

    lower_dirs: tuple[str, ...]
    upper_dir: str
    work_dir: str
    read_only: bool = False
    remove_on_delete: bool = True


@dataclass(frozen=True)
class DirectoryRootfs:
    """A plain directory used as the root (bind-mounted onto itself)."""

    path: str
    read_only: bool = False


Rootfs = OverlayRootfs | DirectoryRootfs


@dataclass(frozen=True)
class BindMount:
    """A host path (file or directory) bound at ``target`` inside the container.

    ``subpath`` selects a path below ``source`` (resolved without leaving it); ``create_host_path``
    creates a missing source directory instead of failing, as Docker's short syntax does.
    """

    source: str
    target: str
    read_only: bool = False
    propagation: Propagation = Propagation.RPRIVATE
    create_host_path: bool = False
    subpath: str | None = None
    recursive: bool = True


@dataclass(frozen=True)
class VolumeMount:
    """A named volume: a directory the volume driver owns, bound at ``target``."""

    directory: str
    target: str
    read_only: bool = False
    subpath: str | None = None


@dataclass(frozen=True)
class TmpfsMount:
    """A tmpfs mounted at ``target`` (``tmpfs:`` of a service)."""

    target: str
    size_bytes: int | None = None
    mode: int = 0o1777
    read_only: bool = False


Mount = BindMount | VolumeMount | TmpfsMount


@dataclass(frozen=True)
class EtcFiles:
    """Host files bound over /etc/hosts, /etc/resolv.conf and /etc/hostname (None: leave as is)."""

    hosts: str | None = None
    resolv_conf: str | None = None
    hostname: str | None = None


@dataclass(frozen=True)
class User:
    """Who the process runs as. ``name`` is what the user wrote (``"1000"``, ``"www:www"``,
    ``"tester"``); it is resolved against the container's /etc/passwd and /etc/group after
    pivot_root. ``additional_gids`` are added to the supplementary groups found for the user."""

    name: str = "0"
    additional_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProcessSpec:
    """The container's process: its command line, environment, directory, user and terminal."""

    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = "/"
    user: User = field(default_factory=User)
    tty: bool = False
    stdin: bool = False
    console_size: tuple[int, int] | None = None  # tty: (rows, columns) set before the process runs


class NamespaceMode(Enum):
    NEW = "new"
    HOST = "host"
    JOIN = "join"
    SHAREABLE = "shareable"  # ipc only: new, and other containers may join it


@dataclass(frozen=True)
class Namespace:
    """One namespace of the container: new, the host's, or joined from ``path``."""

    mode: NamespaceMode = NamespaceMode.NEW
    path: str | None = None  # for JOIN: /proc/<pid>/ns/<kind> or a bind-mounted nsfs file


@dataclass(frozen=True)
class Namespaces:
    """Namespaces of the container. ``mount`` and ``cgroup`` are always new; user namespaces are a
    later addition (they slot in as the first unshare, with uid/gid maps written by the fork server
    before release)."""

    net: Namespace = field(default_factory=Namespace)
    pid: Namespace = field(default_factory=Namespace)
    ipc: Namespace = field(default_factory=Namespace)
    uts: Namespace = field(default_factory=Namespace)
    cgroup: bool = True


class SeccompMode(Enum):
    DEFAULT = "default"
    UNCONFINED = "unconfined"
    CUSTOM = "custom"


@dataclass(frozen=True)
class Seccomp:
    """The container's seccomp filter: the default profile, none, or a Docker-format file."""

    mode: SeccompMode = SeccompMode.DEFAULT
    profile_path: str | None = None  # CUSTOM: a Docker-format JSON profile


@dataclass(frozen=True)
class Device:
    """A host device node to recreate inside the container (``docker run --device``)."""

    host_path: str
    container_path: str
    permissions: str = "rwm"


@dataclass(frozen=True)
class Rlimit:
    """One resource limit (``ulimits:`` of a service)."""

    name: str  # "nofile", "nproc", "core", ... (RLIMIT_ without prefix, lower case)
    soft: int
    hard: int


@dataclass(frozen=True)
class Init:
    """Run a static init (tini) as PID 1 with the container's command as its child."""

    host_path: str = "/usr/bin/tini-static"
    container_path: str = "/dev/init"


@dataclass(frozen=True)
class ContainerSpec:
    """Everything the fork server needs to create one container's init."""

    id: str
    rootfs: Rootfs
    process: ProcessSpec
    mounts: tuple[Mount, ...] = ()
    etc_files: EtcFiles = field(default_factory=EtcFiles)
    hostname: str | None = None
    domainname: str | None = None
    namespaces: Namespaces = field(default_factory=Namespaces)
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    no_new_privileges: bool = False
    seccomp: Seccomp = field(default_factory=Seccomp)
    masked_paths: tuple[str, ...] = DEFAULT_MASKED_PATHS
    readonly_paths: tuple[str, ...] = DEFAULT_READONLY_PATHS
    devices: tuple[Device, ...] = ()
    rlimits: tuple[Rlimit, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    oom_score_adj: int | None = None
    shm_size_bytes: int = 64 * 1024 * 1024
    init: Init | None = None
    stop_signal: int = int(signal.SIGTERM)
    stop_grace_seconds: float = 10.0
    # The container's cgroup directories (one per v1 hierarchy, one on v2). The init moves itself
    # into them (writing 0 to tasks / cgroup.procs) before it reports ready, so before release.
    cgroup_dirs: tuple[str, ...] = ()
    # False where no device cgroup confines device access (cgroup v2 without an eBPF device
    # program): then MKNOD is left out of the default capabilities, see specs/security-defaults.md.
    devices_confined: bool = True
    log_path: str | None = None  # stdout+stderr appended here when no fds are passed to create()


_IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)
_SYSCTL_NAME = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_\-/]+)+$")


def sysctl_problem(name: str, namespaces: Namespaces) -> str | None:
    """Why ``name`` may not be set in this container, or None (only namespaced sysctls are allowed)."""
    if not _SYSCTL_NAME.match(name) or ".." in name:
        return f"sysctl {name!r}: not a sysctl name"
    if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
        if namespaces.ipc.mode is NamespaceMode.HOST:
            return f"sysctl {name!r}: needs a private IPC namespace (ipc is host)"
        return None
    if name.startswith("net."):
        if namespaces.net.mode is NamespaceMode.HOST:
            return f"sysctl {name!r}: needs a private network namespace (network_mode is host)"
        return None
    if name == "kernel.domainname":
        if namespaces.uts.mode is NamespaceMode.HOST:
            return f"sysctl {name!r}: needs a private UTS namespace"
        return None
    return f"sysctl {name!r}: not namespaced; setting it would change the host"


def validate_spec(spec: ContainerSpec) -> None:
    """Raise PermanentError naming every problem in ``spec`` that is visible without the host."""
    problems: list[str] = []
    if not spec.process.args:
        problems.append("process.args is empty: nothing to run")
    for name, _value in spec.sysctls:
        problem = sysctl_problem(name, spec.namespaces)
        if problem:
            problems.append(problem)
    for kind in ("net", "pid", "ipc", "uts"):
        ns: Namespace = getattr(spec.namespaces, kind)
        if ns.mode is NamespaceMode.JOIN and not ns.path:
            problems.append(f"namespaces.{kind}: join needs a path")
        if ns.mode is NamespaceMode.SHAREABLE and kind != "ipc":
            problems.append(f"namespaces.{kind}: only ipc can be shareable")
    if spec.hostname and spec.namespaces.uts.mode is not NamespaceMode.NEW:
        problems.append("hostname is set but the UTS namespace is not private")
    targets = [m.target for m in spec.mounts]
    for target in targets:
        if not target.startswith("/"):
            problems.append(f"mount target {target!r} is not absolute")
    if not spec.process.cwd.startswith("/"):
        problems.append(f"process.cwd {spec.process.cwd!r} is not absolute")
    for device in spec.devices:
        if not device.container_path.startswith("/dev/"):
            problems.append(f"device {device.container_path!r} must be below /dev")
        if not set(device.permissions) <= set("rwm"):
            problems.append(f"device {device.host_path!r}: permissions {device.permissions!r} not in rwm")
    if problems:
        raise PermanentError(f"container {spec.id}: " + "; ".join(problems))


def env_dict(spec: ProcessSpec) -> dict[str, str]:
    """The process environment with PATH defaulted like Docker does."""
    env = dict(spec.env)
    env.setdefault("PATH", DEFAULT_PATH)
    return env


@dataclass(frozen=True)
class ExecSpec:
    """A process to run inside a running container (``orc exec``). ``env`` is added to the
    container's environment; ``user`` None means the container's user."""

    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    user: User | None = None
    privileged: bool = False
    tty: bool = False
    console_size: tuple[int, int] | None = None  # tty: (rows, columns) set before the process runs
