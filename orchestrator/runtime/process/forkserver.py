"""The fork server: a single-threaded process that forks every container init and exec'd process.

Started by ``runtime.ForkServerRuntime`` as ``python -m orchestrator.runtime.process.forkserver
<socket fd> <seccomp cache dir> <blank inits> <listen path>`` before any request, it imports the
whole start path once, becomes a child subreaper, and serves requests (pickled dicts over
SOCK_SEQPACKET, fds with SCM_RIGHTS):

* ``create``: fork the init straight into a new (or joined) pid namespace, so it is PID 1 there
  and this server's own child (or hand the plan to a blank init forked ahead of time); the init
  joins its cgroups (writing ``0``: it moves itself), joins or unshares the other namespaces,
  reports ready on a pipe and blocks on the sync pipe. Reply: its pid, plus the ready, sync and
  error pipe ends (and console socket) for the runtime, which does the rest of the handshake.
* ``exec``: fork a child into the container's pid namespace; it joins the container's cgroups and
  its other namespaces, locks down and execs. Reply: its pid and the error pipe's read end.
* ``adopt``: record a running init this server did not fork (its old server died); its exit is
  watched through a pidfd and reported with an unknown status.
* ``list`` (containers it serves, and exits queued while no runtime was connected), ``readers``
  (copies of a container's output pipe read ends, kept since its ``create``), ``signal``,
  ``ping``, ``shutdown`` (the runtime's ``close``). A container's record is dropped when its init
  is reaped.

If the runtime's socket closes without ``shutdown`` (its process died) while containers run, the
server stays their parent: it reaps them, queues their exits, keeps their output pipes' read ends
(so the pipes keep their data and their writers never see SIGPIPE) and listens on a Unix socket in
the state directory for the next runtime.

Every init and exec'd process is this server's child (and, as a child subreaper, it also inherits
orphans of containers sharing the host pid namespace): it reaps them on SIGCHLD and sends ``exit``
events with the raw wait status. Children run only code imported here before the fork, and end in
``exec`` or ``os._exit``.
"""

from __future__ import annotations

import _signal  # the C half of ``signal``
import contextlib
import errno
import gc
import os
import select
import signal
import stat
import sys
from dataclasses import dataclass

from orchestrator import codecache
from orchestrator.errors import OrcError, PermanentError

from . import wire
from .capabilities import bounding_set_from_status, effective_capabilities, last_cap_from_kernel, mask
from .kernel import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    Kernel,
    LinuxKernel,
    set_child_subreaper,
)
from .seccomp import SHARED_DIRECTORY, BpfCache, default_profile, profile_from_docker_json
from .sequence import CgroupHierarchy, DeviceNode, ExecPlan, StartPlan, StepError, run_exec, run_init
from .spec import ContainerSpec, ExecSpec, NamespaceMode, SeccompMode, env_dict
from .wire import Socket

# The fork server imports this module: ``typing`` (~0.5 MiB there) only for the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

# The namespaces of a blank init in the pool: what a container with the default namespaces needs.
_POOL_FLAGS = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
_POOL_IDLE_MS = 20
_NS_FLAGS = {"net": CLONE_NEWNET, "pid": CLONE_NEWPID, "ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS}


class ServerError(Exception):
    def __init__(self, message: str, kind: str = "permanent", **extra: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.extra = extra


@dataclass
class _Record:
    """A container this fork server started (or adopted): its spec, its init and its execs."""

    spec: ContainerSpec
    pid: int
    capability_mask: int
    seccomp_program: bytes | None
    execs: int = 0
    adopted_pidfd: int | None = None  # an init this server did not fork: watched, signalled by pidfd
    # Copies of the read ends of the container's output pipes: while one is open here a writer in
    # the container never gets SIGPIPE, and a runtime that takes over gets them (``readers``).
    readers: tuple[int, ...] = ()


def discover_cgroup_hierarchies(mountinfo: str) -> tuple[CgroupHierarchy, ...]:
    """The cgroup filesystems mounted under /sys/fs/cgroup, from /proc/self/mountinfo text. A
    single hierarchy named ``""`` means cgroup2 mounted at /sys/fs/cgroup itself."""
    found = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        mount_point = left.split()[4]
        fstype, _source, options = ([*right.split(), "", "", ""])[:3]
        if fstype == "cgroup2" and mount_point == "/sys/fs/cgroup":
            return (CgroupHierarchy("", "cgroup2", ""),)  # a pure v2 host: one tree at the top
        if fstype not in ("cgroup", "cgroup2") or not mount_point.startswith("/sys/fs/cgroup/"):
            continue
        name = mount_point.removeprefix("/sys/fs/cgroup/")
        if "/" in name:
            continue
        kept = ",".join(o for o in options.split(",") if o not in ("rw", "ro")) if fstype == "cgroup" else ""
        found.append(CgroupHierarchy(name, fstype, kept))
    return tuple(found)


def resolve_device(host_path: str, container_path: str) -> DeviceNode:
    try:
        st = os.stat(host_path)
    except OSError as exc:
        raise PermanentError(f"device {host_path}: {exc.strerror}") from exc
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise PermanentError(f"device {host_path}: not a device node")
    return DeviceNode(
        container_path,
        kind,
        os.major(st.st_rdev),
        os.minor(st.st_rdev),
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
    )


# Not copied for privileged containers: the runtime makes its own (devpts instance, symlinks).
_NOT_HOST_DEVICES = ("/dev/pts", "/dev/ptmx", "/dev/console", "/dev/shm", "/dev/mqueue", "/dev/fd")


def host_devices(root: str = "/dev") -> tuple[DeviceNode, ...]:
    """Every character and block device under the host's /dev (what ``privileged`` gets)."""
    found: list[DeviceNode] = []
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.path in _NOT_HOST_DEVICES or entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
                continue
            with contextlib.suppress(PermanentError):
                found.append(resolve_device(entry.path, entry.path))
    return tuple(found)


def join_cgroups(directories: tuple[str, ...]) -> None:
    """Move the calling (single-threaded) process into ``directories``; its children are born there.

    A thread moving itself skips the kernel's global threadgroup lock and RCU wait that moving
    another process through ``cgroup.procs`` costs on v1 (milliseconds per container). On v1 the
    thread is moved through ``tasks``; v2 takes ``0`` (the writer) in ``cgroup.procs``.
    """
    for directory in directories:
        target = directory + "/tasks"
        try:
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                target = directory + "/cgroup.procs"
                fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError as exc:
            raise StepError("join cgroups", f"{exc.strerror} ({target})", exc.errno or 0) from exc


def _listen(path: str) -> Socket | None:
    """A socket only root can reach, where a restarted runtime finds this server again; None if
    the path cannot be used (too long for a Unix socket, read-only directory)."""
    listener = wire.seqpacket_listener()
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(1)
    except OSError:
        listener.close()
        return None
    return listener


def _error_report(exc: BaseException) -> bytes:
    if isinstance(exc, StepError):
        return wire.child_report(exc.step, exc.message, exc.errno)
    if isinstance(exc, OSError):
        return wire.child_report("setup", f"{exc.strerror} ({exc.filename})", exc.errno or 0)
    import traceback  # only for an unexpected error: ~0.4 MiB of a fork server that has none

    return wire.child_report("setup", "".join(traceback.format_exception_only(exc)).strip(), 0)


# The signals a child resets, as plain numbers for ``_signal`` (see below).
_RESET_SIGNALS = tuple(
    int(sig) for sig in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM)
)


def _reset_signals_in_child() -> None:
    # No collections between fork and exec: they would touch (and so copy) every tracked object.
    gc.disable()
    # Python ignores SIGPIPE and SIGXFSZ; ignored signals survive exec, so restore the defaults.
    # Through ``_signal``, the C module: ``signal.signal`` turns the old handler into an enum
    # member (for a function, by raising and catching ValueError), which touched ~75 pages of
    # the server and cost ~0.2 ms in every child.
    _signal.set_wakeup_fd(-1)
    for number in _RESET_SIGNALS:
        _signal.signal(number, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())


def _fail_child(error_fd: int, exc: BaseException) -> NoReturn:
    try:
        os.write(error_fd, _error_report(exc))
    finally:
        os._exit(1)


class ForkServer:
    def __init__(self, sock: Socket | None, kernel: Kernel, cache: BpfCache, pool_size: int = 2) -> None:
        self.sock: Socket | None = sock
        self.kernel = kernel
        self.cache = cache
        self.records: dict[str, _Record] = {}
        self.children: dict[int, tuple[str, str | None]] = {}
        self.programs: dict[tuple[tuple[object, ...], frozenset[str]], bytes] = {}
        self.pool: list[tuple[int, Socket]] = []
        self.pool_size = pool_size
        self.poller = select.poll()
        self.adopted: dict[int, str] = {}  # pidfd -> container id
        self.listener: Socket | None = None
        self.queued_exits: list[dict[str, Any]] = []
        # Output pipe read ends of containers that ended while no runtime was connected.
        self.orphan_readers: dict[str, tuple[int, ...]] = {}
        self.shutting_down = False
        with open("/proc/sys/kernel/cap_last_cap") as f:
            text = f.read()
        self.last_cap = int(text)
        with open("/proc/self/status") as f:
            # What privileged gets and what cap_add can reach: known to the kernel and still ours.
            self.known_caps = last_cap_from_kernel(text) & bounding_set_from_status(f.read())
        with open("/proc/self/mountinfo") as f:
            self.hierarchies = discover_cgroup_hierarchies(f.read())
        self.own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.mounts_fd = os.open("/proc/self/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
        while os.read(self.mounts_fd, 65536):
            pass
        self.wakeup_r, wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(wakeup_w, False)
        signal.set_wakeup_fd(wakeup_w)
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)

    # --- loop ------------------------------------------------------------------------------------

    def serve(self, listen_path: str | None = None) -> None:
        """Serve until the runtime says ``shutdown`` (its ``close``). If the runtime vanishes
        without it (its process died) while containers still run, keep serving them: reap,
        queue their exits, and wait on ``listen_path`` for the next runtime to connect."""
        poller = self.poller
        if self.sock is not None:
            poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self.wakeup_r, select.POLLIN)
        poller.register(self.mounts_fd, select.POLLPRI)
        if listen_path is not None:
            self.listener = _listen(listen_path)
            if self.listener is not None:
                poller.register(self.listener.fileno(), select.POLLIN)
        try:
            self._serve(poller)
        finally:
            self._drain_pool()
            if self.listener is not None and listen_path is not None:
                self.listener.close()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(listen_path)

    def _serve(self, poller: select.poll) -> None:
        while True:
            # Refill the pool of blank inits only when idle, so a fork never delays a request.
            connected = self.sock is not None
            idle_ms = _POOL_IDLE_MS if connected and len(self.pool) < self.pool_size else None
            events = poller.poll(idle_ms)
            if not events:
                self._add_blank()
                continue
            for fd, _events in events:
                if fd == self.mounts_fd:
                    self._mounts_changed()
                    continue
                if fd in self.adopted:
                    self._adopted_exited(fd)
                    continue
                if fd == self.wakeup_r:
                    while True:
                        try:
                            if not os.read(self.wakeup_r, 4096):
                                break
                        except BlockingIOError:
                            break
                    self.reap()
                    if self.sock is None and not self._holding():
                        return  # orphaned, and nothing left to watch over or hand on
                    continue
                if self.listener is not None and fd == self.listener.fileno():
                    self._accept(poller)
                    continue
                if self.sock is None or fd != self.sock.fileno():
                    continue
                try:
                    data, fds = wire.receive(self.sock)
                except OSError:
                    data, fds = b"", []
                if not data:
                    if self.shutting_down or self.listener is None or not (self.records or self.children):
                        return
                    # The runtime died without closing: keep the containers' parent alive.
                    poller.unregister(self.sock.fileno())
                    self.sock.close()
                    self.sock = None
                    self._discard_pool()
                    continue
                self.handle(wire.unpack(data), fds)
                self.reap()

    def _holding(self) -> bool:
        """Whether anything here is still owed to a future runtime: live containers, exit
        statuses or unread container output."""
        return bool(self.records or self.children or self.queued_exits or self.orphan_readers)

    def _accept(self, poller: select.poll) -> None:
        assert self.listener is not None
        try:
            conn = wire.accept(self.listener)
        except OSError:
            return
        if self.sock is not None:
            conn.close()  # one runtime at a time
            return
        self.sock = conn
        poller.register(conn.fileno(), select.POLLIN)

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        if self.sock is None:
            if message.get("event") == "exit":
                self.queued_exits.append(message)  # for the next runtime, with its "list"
            return
        try:
            wire.send(self.sock, wire.pack(message), fds or [])
        except OSError:
            if message.get("event") == "exit":
                self.queued_exits.append(message)

    def handle(self, message: dict[str, Any], fds: list[int]) -> None:
        op = message.get("op")
        reply: dict[str, Any] = {"req": message.get("req"), "ok": True}
        reply_fds: list[int] = []
        try:
            if op == "ping":
                pass
            elif op == "create":
                reply["pid"], reply_fds = self.create(
                    message["spec"], message["rootfs_mount"], fds, int(message.get("readers", 0))
                )
            elif op == "exec":
                reply["pid"], reply["exec_id"], reply_fds = self.exec(message["id"], message["exec"], fds)
            elif op == "signal":
                self.signal(message["id"], message["signal"])
            elif op == "list":
                reply["containers"] = [
                    {
                        "spec": r.spec,
                        "pid": r.pid,
                        "adopted": r.adopted_pidfd is not None,
                        "readers": len(r.readers),
                    }
                    for r in self.records.values()
                ]
                reply["exits"], self.queued_exits = self.queued_exits, []
                reply["orphan_readers"] = {cid: len(fds) for cid, fds in self.orphan_readers.items()}
            elif op == "readers":
                reply_fds = self.readers(message["id"])
            elif op == "shutdown":
                self.shutting_down = True
            elif op == "adopt":
                self.adopt(message["spec"], message["pid"])
            else:
                raise ServerError(f"unknown request {op!r}")
        except ServerError as exc:
            reply = {"req": message.get("req"), "ok": False, "error": str(exc), "kind": exc.kind, **exc.extra}
        except OrcError as exc:
            reply = {"req": message.get("req"), "ok": False, "error": str(exc), "kind": "permanent"}
        except OSError as exc:
            reply = {"req": message.get("req"), "ok": False, "error": f"{op}: {exc}", "kind": "permanent"}
        except Exception as exc:  # a bug in one request must not take every container's parent down
            reply = {
                "req": message.get("req"),
                "ok": False,
                "error": f"{op}: internal error: {exc!r}",
                "kind": "permanent",
            }
        finally:
            for fd in fds:
                os.close(fd)
        self.send(reply, reply_fds)
        for fd in reply_fds:
            os.close(fd)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            owner = self.children.pop(pid, None)
            if owner is None:
                for blank in [b for b in self.pool if b[0] == pid]:
                    blank[1].close()  # a blank init died before it was used
                    self.pool.remove(blank)
                continue  # else an orphan from a container sharing the host pid namespace
            container_id, exec_id = owner
            event: dict[str, Any] = {
                "event": "exit",
                "id": container_id,
                "exec_id": exec_id,
                "pid": pid,
                "status": status,
            }
            if exec_id is None:
                # Nothing more can happen to a dead container here: exec and signals are refused
                # as for an unknown one, and its id is free once the runtime deletes it.
                record = self.records.pop(container_id, None)
                if record is not None and self.sock is None:
                    event["spec"] = record.spec  # the next runtime learns of it from this alone
                    if record.readers:
                        # What it wrote last may still sit in its pipes: for the next runtime.
                        self.orphan_readers[container_id] = record.readers
                elif record is not None:
                    _close_all(record.readers)  # the connected runtime holds its own copies
            self.send(event)

    # --- requests --------------------------------------------------------------------------------

    def _seccomp_program(self, spec: ContainerSpec, caps: frozenset[str], privileged: bool) -> bytes | None:
        if privileged or spec.seccomp.mode is SeccompMode.UNCONFINED:
            return None
        # Building a profile and hashing it costs more than a millisecond: remember the program
        # per (profile source, capability set).
        source: tuple[object, ...] = ("default",)
        if spec.seccomp.mode is SeccompMode.CUSTOM and spec.seccomp.profile_path:
            try:
                st = os.stat(spec.seccomp.profile_path)
            except OSError as exc:
                raise ServerError(f"seccomp profile {spec.seccomp.profile_path}: {exc.strerror}") from exc
            source = (spec.seccomp.profile_path, st.st_mtime_ns, st.st_size)
        key = (source, caps)
        program = self.programs.get(key)
        if program is None:
            program = self._build_seccomp_program(spec, caps)
            self.programs[key] = program
        return program

    def _build_seccomp_program(self, spec: ContainerSpec, caps: frozenset[str]) -> bytes:
        if spec.seccomp.mode is SeccompMode.CUSTOM:
            if not spec.seccomp.profile_path:
                raise ServerError("seccomp: custom profile without a path")
            try:
                with open(spec.seccomp.profile_path, encoding="utf-8") as file:
                    text = file.read()
            except OSError as exc:
                raise ServerError(f"seccomp profile {spec.seccomp.profile_path}: {exc.strerror}") from exc
            return self.cache.program(profile_from_docker_json(text, caps))
        return self.cache.program(default_profile(caps))

    def _policy(self, spec: ContainerSpec) -> tuple[frozenset[str], bytes | None]:
        """The container's capability set and seccomp program."""
        caps = effective_capabilities(spec.cap_add, spec.cap_drop, spec.privileged, self.known_caps)
        if not spec.devices_confined and not spec.privileged and "MKNOD" not in spec.cap_add:
            caps -= {"MKNOD"}
        return caps, self._seccomp_program(spec, caps, spec.privileged)

    def readers(self, container_id: str) -> list[int]:
        """Copies of a container's output pipe read ends for a runtime taking it over (the reply
        closes what it sends: a running container's own stay here, an ended one's are handed off)."""
        record = self.records.get(container_id)
        if record is not None:
            return [os.dup(fd) for fd in record.readers]
        return list(self.orphan_readers.pop(container_id, ()))

    def create(
        self, spec: ContainerSpec, rootfs_mount: str, fds: list[int], reader_count: int = 0
    ) -> tuple[int, list[int]]:
        if spec.id in self.records:
            raise ServerError(f"container {spec.id} already exists", "conflict")
        if len(fds) != 3 + reader_count:
            raise ServerError("create needs three stdio fds (and the announced pipe readers)")
        # handle() closes every received fd after the request: keep copies of the readers.
        readers = tuple(os.dup(fd) for fd in fds[3:])
        fds = fds[:3]
        try:
            return self._create(spec, rootfs_mount, fds, readers)
        except BaseException:
            _close_all(readers)
            raise

    def _create(
        self, spec: ContainerSpec, rootfs_mount: str, fds: list[int], readers: tuple[int, ...]
    ) -> tuple[int, list[int]]:
        if spec.id in self.records:
            raise ServerError(f"container {spec.id} already exists", "conflict")
        caps, program = self._policy(spec)
        devices = tuple(resolve_device(d.host_path, d.container_path) for d in spec.devices)
        if spec.privileged:
            devices = host_devices() + devices
        if spec.init is not None and not os.path.exists(spec.init.host_path):
            raise ServerError(f"init binary {spec.init.host_path} not found (install tini)")
        join: list[tuple[int, int]] = []
        pid_ns_fd: int | None = None
        flags = CLONE_NEWNS
        try:
            for kind, nsflag in _NS_FLAGS.items():
                ns = getattr(spec.namespaces, kind)
                if ns.mode is NamespaceMode.JOIN:
                    fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
                    if nsflag == CLONE_NEWPID:
                        pid_ns_fd = fd
                    else:
                        join.append((fd, nsflag))
                elif ns.mode in (NamespaceMode.NEW, NamespaceMode.SHAREABLE):
                    flags |= nsflag
        except OSError as exc:
            for fd in [fd for fd, _ in join] + ([pid_ns_fd] if pid_ns_fd is not None else []):
                os.close(fd)
            raise ServerError(f"cannot open namespace {exc.filename}: {exc.strerror}", "notfound") from exc
        sync_r, sync_w = os.pipe()
        err_r, err_w = os.pipe()
        ready_r, ready_w = os.pipe()
        console_parent = console_child = None
        if spec.process.tty:
            console_parent, console_child = wire.seqpacket_pair()
        plan = StartPlan(
            spec,
            rootfs_mount,
            mask(caps),
            self.last_cap,
            program,
            devices,
            self.hierarchies,
            (fds[0], fds[1], fds[2]),
            err_w,
            console_child.fileno() if console_child is not None else None,
        )
        child_only = [sync_r, err_w, ready_w, *(fd for fd, _ in join)]
        if console_child is not None:
            child_only.append(console_child.fileno())
        pid = None
        if flags == _POOL_FLAGS | CLONE_NEWPID and not join and pid_ns_fd is None:
            pid = self._take_blank(plan, [*fds, sync_r, err_w, ready_w, *child_only[3:]])
        try:
            if pid is None:
                pid = self._fork(new_pid_namespace=bool(flags & CLONE_NEWPID), join_pid_namespace=pid_ns_fd)
        except OSError as exc:
            for fd in (sync_w, err_r, ready_r, *child_only):
                os.close(fd)
            if console_parent is not None:
                console_parent.close()
            raise ServerError(f"container {spec.id}: fork failed: {exc.strerror}", "temporary") from exc
        finally:
            if pid_ns_fd is not None:
                os.close(pid_ns_fd)
        if pid == 0:
            self._init(
                plan,
                flags & ~CLONE_NEWPID,
                join,
                sync_r,
                ready_w,
                keep=(*fds, *child_only),
            )
        if console_child is not None:
            console_child.close()
            child_only.pop()
        for fd in child_only:
            os.close(fd)
        self.records[spec.id] = _Record(spec, pid, mask(caps), program, readers=readers)
        self.children[pid] = (spec.id, None)
        # The runtime waits for "ready" itself (ready pipe), releases the init (sync pipe), sees
        # its exec or error (error pipe) and receives its terminal (console socket): nothing after
        # the fork costs a round trip through here.
        handed = [ready_r, sync_w, err_r]
        if console_parent is not None:
            handed.append(console_parent.detach())
        return pid, handed

    def _fork(self, new_pid_namespace: bool = False, join_pid_namespace: int | None = None) -> int:
        """Fork a child into a new or joined pid namespace (the server itself stays in its own).

        unshare/setns(CLONE_NEWPID) only changes the namespace of the caller's future children,
        so the server switches, forks once, and switches back: the child is PID 1 of the new
        namespace and still this server's own child, without an intermediate process.
        """
        if new_pid_namespace:
            self.kernel.unshare(CLONE_NEWPID)
        elif join_pid_namespace is not None:
            self.kernel.setns(join_pid_namespace, CLONE_NEWPID)
        else:
            return os.fork()
        try:
            pid = os.fork()
        except BaseException:
            self.kernel.setns(self.own_pid_namespace, CLONE_NEWPID)
            raise
        if pid != 0:
            self.kernel.setns(self.own_pid_namespace, CLONE_NEWPID)
        return pid

    def _init(
        self,
        plan: StartPlan,
        flags: int,
        join: list[tuple[int, int]],
        sync_r: int,
        ready_w: int,
        keep: tuple[int, ...],
    ) -> NoReturn:
        """The container's init: enter cgroups and namespaces, say ready, wait for release."""
        k = self.kernel
        try:
            _reset_signals_in_child()
            k.close_fds_except(keep)
            join_cgroups(plan.spec.cgroup_dirs)
            for fd, nstype in join:
                k.setns(fd, nstype)
                os.close(fd)
            k.unshare(flags)
            self._ready_then_run(plan, sync_r, ready_w)
        except BaseException as exc:
            _fail_child(plan.error_fd, exc)

    def _ready_then_run(self, plan: StartPlan, sync_r: int, ready_w: int) -> NoReturn:
        os.write(ready_w, b"r")
        os.close(ready_w)
        if os.read(sync_r, 1) != b"\x01":
            os._exit(0)  # abandoned before start
        os.close(sync_r)
        run_init(plan, self.kernel)

    # --- the pool of blank inits ---------------------------------------------------------------
    # A blank init is forked ahead of time into a new pid namespace and has unshared the usual
    # namespaces; it waits for its plan and descriptors on a socket. ``create`` for a container
    # with those namespaces hands one over instead of forking and unsharing on the spot.

    def _add_blank(self) -> None:
        parent, child = wire.seqpacket_pair()
        try:
            pid = self._fork(new_pid_namespace=True)
        except OSError:
            parent.close()
            child.close()
            self.pool_size = 0  # cannot fork ahead here; create forks on demand instead
            return
        if pid == 0:
            self._blank(child.fileno())
        child.close()
        self.pool.append((pid, parent))

    def _blank(self, control: int) -> NoReturn:
        k = self.kernel
        error_fd = -1
        try:
            _reset_signals_in_child()
            k.close_fds_except((control,))
            k.unshare(_POOL_FLAGS)
            sock = wire.socket_of(control)
            # CLOEXEC matters for the error pipe: its EOF at exec is how the server learns of success.
            data, fds = wire.receive(sock)
            if not data:
                os._exit(0)  # the server is gone or drained the pool
            sock.close()
            stdin, stdout, stderr, sync_r, err_w, ready_w, *console = fds
            error_fd = err_w
            fields = wire.unpack(data)
            plan = StartPlan(
                **fields,
                stdio=(stdin, stdout, stderr),
                error_fd=err_w,
                console_fd=console[0] if console else None,
            )
            join_cgroups(plan.spec.cgroup_dirs)
            self._ready_then_run(plan, sync_r, ready_w)
        except BaseException as exc:
            if error_fd >= 0:
                _fail_child(error_fd, exc)
            os._exit(1)

    def _take_blank(self, plan: StartPlan, fds: list[int]) -> int | None:
        """Hand ``plan`` to a blank init; its pid, or None if none is left (fork instead)."""
        fields = {
            "spec": plan.spec,
            "rootfs_mount": plan.rootfs_mount,
            "capability_mask": plan.capability_mask,
            "last_cap": plan.last_cap,
            "seccomp_program": plan.seccomp_program,
            "devices": plan.devices,
            "cgroup_hierarchies": plan.cgroup_hierarchies,
        }
        data = wire.pack(fields)
        while self.pool:
            pid, sock = self.pool.pop(0)
            try:
                wire.send(sock, data, fds)
                return pid
            except OSError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # not reaped yet (reap drops dead blanks): still its pid
            finally:
                sock.close()
        return None

    def _mounts_changed(self) -> None:
        """The host's mount table changed. A blank init holds a copy of it from when it was
        forked, so mounts made since (a new filesystem under a bind source) might be missing
        from it: discard the blanks (reap() collects them) and let idle time fork fresh ones."""
        os.lseek(self.mounts_fd, 0, os.SEEK_SET)
        while os.read(self.mounts_fd, 65536):
            pass  # reading it through re-arms the notification
        self._discard_pool()

    def _discard_pool(self) -> None:
        for _pid, sock in self.pool:
            sock.close()  # the blank reads EOF and exits; reap() collects it
        self.pool.clear()

    def _drain_pool(self) -> None:
        for pid, sock in self.pool:
            sock.close()  # the blank reads EOF and exits
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pool.clear()

    def _child_error(self, data: bytes, container_id: str) -> ServerError:
        step, message, error_number = wire.parse_child_report(data)
        return ServerError(
            f"container {container_id}: {step}: {message}", "start", step=step, errno=error_number
        )

    def signal(self, container_id: str, signal_number: int) -> None:
        record = self.records.get(container_id)
        if record is None:
            return  # exited (or never existed): nothing to signal
        if record.adopted_pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(record.adopted_pidfd, signal_number)
            return
        try:
            os.kill(record.pid, signal_number)  # still our unreaped child: the pid cannot be reused
        except ProcessLookupError:
            pass

    def adopt(self, spec: ContainerSpec, pid: int) -> None:
        """Record a running init this server did not fork; its exit is seen through a pidfd."""
        if spec.id in self.records:
            raise ServerError(f"container {spec.id} already exists", "conflict")
        caps, program = self._policy(spec)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            raise ServerError(f"container {spec.id}: its init (pid {pid}) is gone", "notfound") from exc
        if _is_zombie(pid):
            os.close(pidfd)
            raise ServerError(f"container {spec.id}: its init (pid {pid}) has exited", "notfound")
        self.records[spec.id] = _Record(spec, pid, mask(caps), program, adopted_pidfd=pidfd)
        self.adopted[pidfd] = spec.id
        self.poller.register(pidfd, select.POLLIN)

    def _adopted_exited(self, pidfd: int) -> None:
        container_id = self.adopted.pop(pidfd)
        self.poller.unregister(pidfd)
        os.close(pidfd)
        record = self.records.pop(container_id, None)
        pid = record.pid if record is not None else 0
        event: dict[str, Any] = {
            "event": "exit",
            "id": container_id,
            "exec_id": None,
            "pid": pid,
            "status": None,
        }
        if record is not None and self.sock is None:
            event["spec"] = record.spec
        self.send(event)

    def exec(self, container_id: str, spec: ExecSpec, fds: list[int]) -> tuple[int, str, list[int]]:
        """Fork a process into the container; returns its pid, exec id and the read end of its
        error pipe, which the runtime reads to EOF (its exec) itself, plus with ``tty`` the
        socket its terminal's master end arrives on."""
        record = self.records.get(container_id)
        if record is None:
            raise ServerError(f"container {container_id} is not running", "conflict")
        container = record.spec
        env = env_dict(container.process)
        env.update(dict(spec.env))
        privileged = spec.privileged or container.privileged
        capability_mask = mask(self.known_caps) if privileged else record.capability_mask
        program = None if privileged else record.seccomp_program
        # One pidfd joins every namespace of the init in a single setns (Linux 5.8+): no /proc
        # lookups, and the pid is our unreaped child, so the pidfd names the right process.
        try:
            pidfd = os.pidfd_open(record.pid)
        except OSError as exc:
            raise ServerError(
                f"container {container_id}: cannot reach its init: {exc.strerror}", "conflict"
            ) from exc
        ns_flags = CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWNS
        if container.namespaces.cgroup:
            ns_flags |= CLONE_NEWCGROUP
        err_r, err_w = os.pipe()
        console_parent = console_child = None
        if spec.tty:
            console_parent, console_child = wire.seqpacket_pair()
        plan = ExecPlan(
            args=spec.args,
            env=env,
            cwd=spec.cwd or container.process.cwd,
            user=spec.user or container.process.user,
            capability_mask=capability_mask,
            last_cap=self.last_cap,
            no_new_privileges=container.no_new_privileges,
            seccomp_program=program,
            stdio=(fds[0], fds[1], fds[2]),
            error_fd=err_w,
            rlimits=container.rlimits,
            oom_score_adj=container.oom_score_adj,
            console_fd=console_child.fileno() if console_child is not None else None,
            console_size=spec.console_size,
        )
        keep = [*fds, err_w, pidfd] + ([console_child.fileno()] if console_child is not None else [])
        try:
            pid = self._fork(join_pid_namespace=pidfd)
        except OSError as exc:
            for fd in (err_r, err_w, pidfd):
                os.close(fd)
            for sock in (console_parent, console_child):
                if sock is not None:
                    sock.close()
            raise ServerError(f"exec in {container_id}: fork failed: {exc.strerror}", "temporary") from exc
        if pid == 0:
            self._exec_child(plan, container.cgroup_dirs, pidfd, ns_flags, keep=tuple(keep))
        for fd in (err_w, pidfd):
            os.close(fd)
        if console_child is not None:
            console_child.close()
        record.execs += 1
        exec_id = f"{container_id}.exec{record.execs}"
        self.children[pid] = (container_id, exec_id)
        handed = [err_r] + ([console_parent.detach()] if console_parent is not None else [])
        return pid, exec_id, handed

    def _exec_child(
        self, plan: ExecPlan, cgroup_dirs: tuple[str, ...], pidfd: int, ns_flags: int, keep: tuple[int, ...]
    ) -> NoReturn:
        """A process joining a running container: its cgroups, then its namespaces."""
        k = self.kernel
        try:
            _reset_signals_in_child()
            k.close_fds_except(keep)
            join_cgroups(cgroup_dirs)
            k.setns(pidfd, ns_flags)
            os.close(pidfd)
            run_exec(plan, k)
        except BaseException as exc:
            _fail_child(plan.error_fd, exc)


def _is_zombie(pid: int) -> bool:
    """Whether ``pid`` exited and waits to be reaped (its pidfd would report it at once)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except OSError:
        return True


def _close_all(fds: tuple[int, ...]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def main(argv: list[str]) -> int:
    """``forkserver <socket fd> <seccomp cache dir> [<blank inits> [<listen path>]]``"""
    sock = wire.socket_of(int(argv[1]))
    set_child_subreaper()
    # The supervisor's terminal and process group are not ours: a Ctrl-C there must not kill the
    # parent of every container. (Children restore the default before exec.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = ForkServer(
        sock,
        LinuxKernel(),
        BpfCache(argv[2], shared=SHARED_DIRECTORY),
        pool_size=int(argv[3]) if len(argv) > 3 else 2,
    )
    # Its children end with os._exit and the server itself rarely exits: keep new code now.
    codecache.save_and_release()
    # Everything imported so far lives as long as the server: keep the collector off those pages
    # so forked children share them instead of copying them.
    gc.collect()
    gc.freeze()
    gc.enable()  # off while the server imported (runtime.launch)
    server.serve(argv[4] if len(argv) > 4 else None)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv))
    except KeyboardInterrupt:
        raise SystemExit(errno.EINTR) from None
