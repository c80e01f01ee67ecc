"""The container side of a start and of an exec, in order, against the ``Kernel`` Protocol.

``run_init(plan, kernel)`` runs inside the container's init after the runtime released it:
stdio, setsid → cgroup namespace → mount propagation → rootfs → /proc /dev (+nodes, pts and the
console for a tty, shm, mqueue) /sys (+cgroup) → devices → volumes, binds, tmpfs → /etc files →
init binary → pivot_root and detach the old root → read-only root → user lookup → hostname →
sysctls → masked and read-only paths → rlimits, oom_score_adj → capability bounding set and
no_new_privs → seccomp → groups/gid/uid → final capability sets → umask, cwd → close inherited fds
→ exec. Sysctls come before the read-only paths because
/proc/sys is one of them.

``run_exec(plan, kernel)`` is the same tail for a process joining a running container (its
namespaces and cgroups were joined by the forked child itself, see ``forkserver``).

Everything here is plain data plus ``Kernel`` calls so unit tests run it against
``fake.RecordingKernel``. It is imported by the fork server before any fork and uses nothing that
imports lazily. A failing step raises ``StepError`` naming the step.
"""

from __future__ import annotations

import errno
import posixpath
import resource
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from orchestrator.errors import OrcError

from .kernel import (
    CLONE_NEWCGROUP,
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    Kernel,
)
from .spec import (
    BindMount,
    ContainerSpec,
    DirectoryRootfs,
    Mount,
    NamespaceMode,
    OverlayRootfs,
    Propagation,
    Rlimit,
    TmpfsMount,
    User,
    VolumeMount,
    env_dict,
)
from .users import ResolvedUser, resolve_user

# The fork server imports this module: ``typing`` (~0.5 MiB there) only for the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


class StepError(Exception):
    """A start or exec step failed; ``step`` names it and ``errno`` is the OS error (0 if none)."""

    def __init__(self, step: str, message: str, error_number: int = 0) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message
        self.errno = error_number


@dataclass(frozen=True)
class DeviceNode:
    """A device node to create in the container's /dev (resolved from the host before fork)."""

    path: str
    kind: str  # "c" or "b"
    major: int
    minor: int
    mode: int = 0o666
    uid: int = 0
    gid: int = 0


DEFAULT_DEVICES: tuple[DeviceNode, ...] = (
    DeviceNode("/dev/null", "c", 1, 3),
    DeviceNode("/dev/zero", "c", 1, 5),
    DeviceNode("/dev/full", "c", 1, 7),
    DeviceNode("/dev/random", "c", 1, 8),
    DeviceNode("/dev/urandom", "c", 1, 9),
    DeviceNode("/dev/tty", "c", 5, 0),
)
DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
    ("/proc/kcore", "/dev/core"),
)


@dataclass(frozen=True)
class CgroupHierarchy:
    """One cgroup filesystem to show read-only under /sys/fs/cgroup/<name> (fstype cgroup or cgroup2)."""

    name: str
    fstype: str
    options: str


@dataclass(frozen=True)
class StartPlan:
    """What the container init needs, computed by the fork server before it forks."""

    spec: ContainerSpec
    rootfs_mount: str  # empty host directory where the root is assembled
    capability_mask: int
    last_cap: int
    seccomp_program: bytes | None
    devices: tuple[DeviceNode, ...]
    cgroup_hierarchies: tuple[CgroupHierarchy, ...]
    stdio: tuple[int, int, int]
    error_fd: int
    console_fd: int | None = None  # tty: the socket the terminal's master end is sent over


@dataclass(frozen=True)
class ExecPlan:
    """What a process joining a running container needs (after setns)."""

    args: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    user: User
    capability_mask: int
    last_cap: int
    no_new_privileges: bool
    seccomp_program: bytes | None
    stdio: tuple[int, int, int]
    error_fd: int
    rlimits: tuple[Rlimit, ...] = ()  # the container's: exec'd processes get its ulimits too
    oom_score_adj: int | None = None
    console_fd: int | None = None  # tty: the socket the terminal's master end is sent over
    console_size: tuple[int, int] | None = None  # tty: (rows, columns)


@contextmanager
def step(name: str) -> Iterator[None]:
    try:
        yield
    except StepError:
        raise
    except OSError as exc:
        text = exc.strerror or str(exc)
        if exc.filename:
            text = f"{text} ({exc.filename})"
        raise StepError(name, text, exc.errno or 0) from exc
    except OrcError as exc:
        raise StepError(name, str(exc)) from exc


def secure_join(root: str, unsafe_path: str, readlink: Callable[[str], str | None]) -> str:
    """``root`` + ``unsafe_path`` with every symlink resolved as if ``root`` were ``/``, so a
    symlink in an image cannot point a mount outside the container's root."""
    pending = [p for p in unsafe_path.split("/") if p]
    resolved: list[str] = []
    followed = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = posixpath.join(root, *resolved, part)
        target = readlink(candidate)
        if target is None:
            resolved.append(part)
            continue
        followed += 1
        if followed > 40:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", unsafe_path)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p] + pending
    return posixpath.join(root, *resolved) if resolved else root


def _propagation_flags(propagation: Propagation) -> int:
    base = {
        Propagation.PRIVATE: MS_PRIVATE,
        Propagation.RPRIVATE: MS_PRIVATE | MS_REC,
        Propagation.SLAVE: MS_SLAVE,
        Propagation.RSLAVE: MS_SLAVE | MS_REC,
        Propagation.SHARED: MS_SHARED,
        Propagation.RSHARED: MS_SHARED | MS_REC,
    }
    return base[propagation]


def _mount_target(k: Kernel, root: str, target: str, directory: bool) -> str:
    dest = secure_join(root, target, k.readlink)
    if directory:
        k.makedirs(dest, 0o755)
    elif not k.exists(dest):
        k.makedirs(posixpath.dirname(dest), 0o755)
        k.touch(dest)
    return dest


def _remount_readonly(k: Kernel, dest: str, extra: int = 0) -> None:
    k.mount(None, dest, None, MS_BIND | MS_REMOUNT | MS_RDONLY | extra, None)


def mount_rootfs(plan: StartPlan, k: Kernel) -> None:
    root = plan.rootfs_mount
    rootfs = plan.spec.rootfs
    with step("mount rootfs"):
        if isinstance(rootfs, OverlayRootfs):
            if not rootfs.lower_dirs:
                raise StepError("mount rootfs", "overlay rootfs has no lower directories")
            data = f"lowerdir={':'.join(rootfs.lower_dirs)},upperdir={rootfs.upper_dir},workdir={rootfs.work_dir}"
            k.mount("overlay", root, "overlay", 0, data)
        elif isinstance(rootfs, DirectoryRootfs):
            k.mount(rootfs.path, root, None, MS_BIND | MS_REC, None)


def mount_system(plan: StartPlan, k: Kernel) -> None:
    """/proc, /dev and its nodes and links, /dev/pts, /dev/shm, /dev/mqueue, /sys, /sys/fs/cgroup."""
    root, spec = plan.rootfs_mount, plan.spec
    with step("mount /proc"):
        k.mount("proc", _mount_target(k, root, "/proc", True), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    with step("mount /dev"):
        dev = _mount_target(k, root, "/dev", True)
        k.mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
    with step("create device nodes"):
        created: set[str] = set()
        for node in DEFAULT_DEVICES + plan.devices:
            if node.path in created:
                continue
            created.add(node.path)
            path = root + node.path
            k.makedirs(posixpath.dirname(path), 0o755)
            k.mknod(path, node.kind, node.major, node.minor, node.mode, node.uid, node.gid)
        for target, link in DEV_SYMLINKS:
            k.symlink(target, root + link)
    with step("mount /dev/pts"):
        pts = root + "/dev/pts"
        k.makedirs(pts, 0o755)
        k.mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    if plan.console_fd is not None:
        open_console(plan, k)
    with step("mount /dev/shm"):
        shm = root + "/dev/shm"
        k.makedirs(shm, 0o1777)
        k.mount(
            "shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"mode=1777,size={spec.shm_size_bytes}"
        )
    with step("mount /dev/mqueue"):
        mqueue = root + "/dev/mqueue"
        k.makedirs(mqueue, 0o755)
        k.mount("mqueue", mqueue, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    with step("mount /sys"):
        sys_dir = _mount_target(k, root, "/sys", True)
        # Privileged containers get /sys and the cgroup filesystems writable, as under Docker.
        ro_flags = (0 if spec.privileged else MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC
        if spec.namespaces.net.mode is NamespaceMode.NEW:
            k.mount("sysfs", sys_dir, "sysfs", ro_flags, None)
        else:
            # sysfs shows the network namespace of whoever mounts it; without our own, bind the host's.
            k.mount("/sys", sys_dir, None, MS_BIND | MS_REC, None)
            if not spec.privileged:
                _remount_readonly(k, sys_dir, MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if spec.namespaces.cgroup and plan.cgroup_hierarchies:
        with step("mount /sys/fs/cgroup"):
            cgroup_root = sys_dir + "/fs/cgroup"
            if plan.cgroup_hierarchies[0].name == "":
                k.mount("cgroup2", cgroup_root, "cgroup2", ro_flags, None)
                return
            k.mount("tmpfs", cgroup_root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
            for hierarchy in plan.cgroup_hierarchies:
                target = f"{cgroup_root}/{hierarchy.name}"
                k.makedirs(target, 0o755)
                k.mount("cgroup", target, hierarchy.fstype, ro_flags, hierarchy.options or None)
            if not spec.privileged:
                _remount_readonly(k, cgroup_root, MS_NOSUID | MS_NODEV | MS_NOEXEC)


def open_console(plan: StartPlan, k: Kernel) -> None:
    """tty: a terminal from the container's own devpts; the slave becomes stdio, the controlling
    terminal and /dev/console, the master goes to the fork server over the console socket."""
    assert plan.console_fd is not None
    root = plan.rootfs_mount
    with step("open console"):
        master, slave, number = k.open_pty(root + "/dev/pts/ptmx")
        if plan.spec.process.console_size is not None:
            k.set_window_size(master, *plan.spec.process.console_size)
        console = root + "/dev/console"
        k.touch(console)
        k.mount(f"{root}/dev/pts/{number}", console, None, MS_BIND, None)
        k.send_fd(plan.console_fd, master)
        for target in (0, 1, 2):
            k.dup2(slave, target)
        k.set_controlling_terminal(0)


def _mount_sort_key(mount: Mount) -> int:
    return len([p for p in mount.target.split("/") if p])


def mount_volumes(plan: StartPlan, k: Kernel) -> None:
    """User mounts, parents before children (Docker sorts them the same way)."""
    root = plan.rootfs_mount
    for mount in sorted(plan.spec.mounts, key=_mount_sort_key):
        with step(f"mount {mount.target}"):
            if isinstance(mount, TmpfsMount):
                dest = _mount_target(k, root, mount.target, True)
                data = f"mode={mount.mode:o}" + (f",size={mount.size_bytes}" if mount.size_bytes else "")
                flags = MS_NOSUID | MS_NODEV | (MS_RDONLY if mount.read_only else 0)
                k.mount("tmpfs", dest, "tmpfs", flags, data)
                continue
            if isinstance(mount, BindMount):
                source, recursive, propagation = mount.source, mount.recursive, mount.propagation
                if not k.exists(source):
                    if not mount.create_host_path:
                        raise StepError(f"mount {mount.target}", f"bind source path does not exist: {source}")
                    k.makedirs(source, 0o755)
            else:
                assert isinstance(mount, VolumeMount)
                source, recursive, propagation = mount.directory, True, Propagation.RPRIVATE
            if mount.subpath:
                source = secure_join(source, mount.subpath, k.readlink)
                if not k.exists(source):
                    raise StepError(f"mount {mount.target}", f"subpath does not exist: {mount.subpath}")
            dest = _mount_target(k, root, mount.target, k.is_dir(source))
            k.mount(source, dest, None, MS_BIND | (MS_REC if recursive else 0), None)
            if mount.read_only:
                _remount_readonly(k, dest)
            k.mount(None, dest, None, _propagation_flags(propagation), None)


def mount_etc_files(plan: StartPlan, k: Kernel) -> None:
    root = plan.rootfs_mount
    files = plan.spec.etc_files
    for source, target in (
        (files.hosts, "/etc/hosts"),
        (files.resolv_conf, "/etc/resolv.conf"),
        (files.hostname, "/etc/hostname"),
    ):
        if source is None:
            continue
        with step(f"mount {target}"):
            dest = _mount_target(k, root, target, False)
            k.mount(source, dest, None, MS_BIND, None)
            k.mount(None, dest, None, MS_PRIVATE, None)
    init = plan.spec.init
    if init is not None:
        with step("mount init"):
            dest = _mount_target(k, root, init.container_path, False)
            k.mount(init.host_path, dest, None, MS_BIND, None)
            _remount_readonly(k, dest)


def pivot(plan: StartPlan, k: Kernel) -> None:
    """Switch the root to the assembled rootfs and drop every trace of the host's mounts."""
    spec = plan.spec
    with step("create working directory"):
        k.makedirs(secure_join(plan.rootfs_mount, spec.process.cwd, k.readlink), 0o755)
    with step("pivot_root"):
        k.chdir(plan.rootfs_mount)
        # pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only
        # the container's tree (runc does the same, avoiding a temporary directory in the image).
        k.pivot_root(".", ".")
        k.mount(None, ".", None, MS_SLAVE | MS_REC, None)
        k.umount(".", MNT_DETACH)
        k.chdir("/")
    if spec.rootfs.read_only:
        with step("remount root read-only"):
            _remount_readonly(k, "/")


def read_user(k: Kernel, user: User) -> ResolvedUser:
    with step("resolve user"):
        return resolve_user(
            user.name, user.additional_groups, k.read_text("/etc/passwd"), k.read_text("/etc/group")
        )


def set_identity(plan: StartPlan, k: Kernel) -> None:
    spec = plan.spec
    if spec.namespaces.uts.mode is NamespaceMode.NEW:
        with step("set hostname"):
            # Like Docker: without a hostname the container is named after its id, never the host.
            k.sethostname(spec.hostname or spec.id[:12])
            if spec.domainname:
                k.setdomainname(spec.domainname)
    with step("write sysctls"):
        for name, value in spec.sysctls:
            k.write_text("/proc/sys/" + name.replace(".", "/"), value)


def restrict_paths(plan: StartPlan, k: Kernel) -> None:
    spec = plan.spec
    with step("mask paths"):
        for path in spec.masked_paths:
            if not k.exists(path):
                continue
            if k.is_dir(path):
                k.mount("tmpfs", path, "tmpfs", MS_RDONLY, None)
            else:
                k.mount("/dev/null", path, None, MS_BIND, None)
    with step("read-only paths"):
        for path in spec.readonly_paths:
            if not k.exists(path):
                continue
            k.mount(path, path, None, MS_BIND | MS_REC, None)
            _remount_readonly(k, path, MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_REC)


def set_limits(k: Kernel, rlimits: tuple[Rlimit, ...], oom_score_adj: int | None) -> None:
    with step("set rlimits"):
        for limit in rlimits:
            number = getattr(resource, "RLIMIT_" + limit.name.upper(), None)
            if number is None:
                raise StepError("set rlimits", f"unknown ulimit {limit.name!r}")
            k.setrlimit(number, limit.soft, limit.hard)
    if oom_score_adj is not None:
        with step("set oom_score_adj"):
            k.write_text("/proc/self/oom_score_adj", str(oom_score_adj))


def lock_down(
    k: Kernel,
    capability_mask: int,
    last_cap: int,
    no_new_privileges: bool,
    seccomp_program: bytes | None,
    user: ResolvedUser,
) -> None:
    """Bounding set → keepcaps → no_new_privs → seccomp → groups/gid/uid → final capability sets."""
    with step("drop capabilities"):
        k.drop_bounding_capabilities(capability_mask, last_cap)
        k.set_keep_capabilities(True)
    if no_new_privileges:
        with step("set no_new_privs"):
            k.set_no_new_privileges()
    if seccomp_program is not None:
        # Still holding CAP_SYS_ADMIN, so the filter loads without no_new_privs.
        with step("load seccomp filter"):
            k.load_seccomp_filter(seccomp_program)
    with step("set user"):
        k.set_groups(user.groups)
        k.set_gid(user.gid)
        k.set_uid(user.uid)
        k.set_keep_capabilities(False)
    with step("set capabilities"):
        k.set_capabilities(capability_mask)


def find_executable(k: Kernel, name: str, env: dict[str, str]) -> str:
    if "/" in name:
        if k.is_executable(name):
            return name
        reason = "no such file or directory" if not k.exists(name) else "permission denied"
        raise StepError("exec", f"{name}: {reason}", errno.ENOENT if not k.exists(name) else errno.EACCES)
    for directory in env.get("PATH", "").split(":"):
        candidate = posixpath.join(directory or ".", name)
        if k.is_executable(candidate):
            return candidate
    raise StepError("exec", f"{name}: executable file not found in $PATH", errno.ENOENT)


def _exec(
    k: Kernel, args: tuple[str, ...], env: dict[str, str], cwd: str, keep_fd: int, user: ResolvedUser
) -> NoReturn:
    env.setdefault("HOME", user.home)
    with step("set umask"):
        k.set_umask(0o022)  # as runc and Docker: not whatever the supervisor happened to have
    with step("change to working directory"):
        k.chdir(cwd)
    path = find_executable(k, args[0], env)
    with step("close inherited file descriptors"):
        k.close_fds_except((keep_fd,))
    with step("exec"):
        k.execve(path, args, env)


def _stdio(k: Kernel, stdio: tuple[int, int, int]) -> None:
    with step("set up stdio"):
        for target, fd in enumerate(stdio):
            if fd != target:
                k.dup2(fd, target)


def run_init(plan: StartPlan, k: Kernel) -> NoReturn:
    """The container init, from release to exec. Never returns: exec or ``StepError``."""
    spec = plan.spec
    _stdio(k, plan.stdio)
    with step("setsid"):
        k.setsid()
    if spec.namespaces.cgroup:
        # After the fork server moved us into our cgroups, so the namespace is rooted there.
        with step("unshare cgroup namespace"):
            k.unshare(CLONE_NEWCGROUP)
    with step("make mounts private"):
        k.mount(None, "/", None, MS_SLAVE | MS_REC, None)
    mount_rootfs(plan, k)
    mount_system(plan, k)
    mount_volumes(plan, k)
    mount_etc_files(plan, k)
    pivot(plan, k)
    user = read_user(k, spec.process.user)
    set_identity(plan, k)
    if not spec.privileged:  # Docker masks and write-protects nothing for privileged containers
        restrict_paths(plan, k)
    set_limits(k, spec.rlimits, spec.oom_score_adj)
    lock_down(k, plan.capability_mask, plan.last_cap, spec.no_new_privileges, plan.seccomp_program, user)
    args = spec.process.args
    if spec.init is not None:
        args = (spec.init.container_path, "--", *args)
    _exec(k, args, env_dict(spec.process), spec.process.cwd, plan.error_fd, user)


def run_exec(plan: ExecPlan, k: Kernel) -> NoReturn:
    """A process joining a running container, after setns and fork: lock down and exec."""
    _stdio(k, plan.stdio)
    with step("setsid"):
        k.setsid()
    if plan.console_fd is not None:
        with step("open console"):
            # A new terminal from the container's devpts (we are in its mount namespace now).
            master, slave, _number = k.open_pty("/dev/pts/ptmx")
            if plan.console_size is not None:
                k.set_window_size(master, *plan.console_size)
            k.send_fd(plan.console_fd, master)
            for target in (0, 1, 2):
                k.dup2(slave, target)
            k.set_controlling_terminal(0)
    user = read_user(k, plan.user)
    set_limits(k, plan.rlimits, plan.oom_score_adj)
    lock_down(k, plan.capability_mask, plan.last_cap, plan.no_new_privileges, plan.seccomp_program, user)
    _exec(k, plan.args, dict(plan.env), plan.cwd, plan.error_fd, user)
