"""The process runtime as the reconciler sees it: ``ProcessRuntime`` and its real implementation.

``ForkServerRuntime`` starts a fork server (``forkserver.py``) as a fresh single-threaded Python
process and talks to it over a SOCK_SEQPACKET socket (pickled messages, fds passed with
SCM_RIGHTS). The server forks every container and exec'd process, so this side may have as many
threads as it likes. A reader thread here matches replies to requests and records exit events, so
no exit code is lost: the server is the parent (and child subreaper) of everything it starts.
The handshakes after a fork (init ready, release, exec seen or error read) use pipes the server
hands over, so the calling thread waits on them directly. Deleted containers' directories are
renamed aside and removed by a background thread. A runtime whose process died leaves its server
running; the next runtime on the same state directory connects to it and takes the containers
over, with the read ends of their output pipes (``Stdio.readers``, ``take_readers``) so their
output is neither lost nor met with SIGPIPE (``adopt``/``adopt_recorded`` are for inits whose
server died too).

States: created → running → stopped → deleted (created → stopped when the init dies or is killed
before start). ``check_transition`` guards every change and names both states when refusing.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, Protocol

from orchestrator.errors import ConflictError, NotFoundError, OrcError, PermanentError, TemporaryError
from orchestrator.swapfile import InodePool, overwrite

from . import wire
from .server import LISTEN_NAME, prepare_dir, spawn_fork_server, take_early
from .spec import ContainerSpec, ExecSpec, OverlayRootfs, validate_spec


class ContainerState(Enum):
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    DELETED = "deleted"


_ALLOWED = {
    ContainerState.CREATED: {ContainerState.RUNNING, ContainerState.STOPPED},
    ContainerState.RUNNING: {ContainerState.STOPPED},
    ContainerState.STOPPED: {ContainerState.DELETED},
    ContainerState.DELETED: set(),
}


class InvalidStateError(ConflictError):
    """A lifecycle call that the container's current state does not allow."""


def check_transition(container_id: str, current: ContainerState, wanted: ContainerState) -> None:
    if wanted not in _ALLOWED[current]:
        raise InvalidStateError(
            f"container {container_id}: cannot go from {current.value} to {wanted.value}"
            + (" (stop it first)" if current is ContainerState.RUNNING else "")
        )


class ContainerStartError(PermanentError):
    """The container's init (or an exec'd process) failed before exec; ``step`` says where."""

    def __init__(self, message: str, step: str = "", error_number: int = 0) -> None:
        super().__init__(message)
        self.step = step
        self.errno = error_number


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: ``code`` as a shell reports it (128+signal when killed).

    ``known`` is False for an adopted container (see ``ForkServerRuntime.adopt``): it was not our
    child, so the kernel told nobody its status; ``code`` is then 255 (137 if the cgroup driver
    saw an OOM kill)."""

    code: int
    signal: int | None
    oom_killed: bool = False
    known: bool = True

    @classmethod
    def from_wait_status(cls, status: int, oom_killed: bool = False) -> ExitStatus:
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            return cls(code=128 + sig, signal=sig, oom_killed=oom_killed)
        return cls(code=os.WEXITSTATUS(status), signal=None, oom_killed=oom_killed)


@dataclass(frozen=True)
class Stdio:
    """File descriptors for the process's stdin/stdout/stderr (None: /dev/null, or the log file).

    ``readers`` are the read ends of the pipes behind stdout/stderr (see :func:`output_pipe`): the
    fork server keeps copies for as long as the container lives, so its output pipes never lose
    their last reader when the caller's process dies, and a runtime that takes the container over
    gets them back with :meth:`ForkServerRuntime.take_readers` and drains what was buffered."""

    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None
    readers: tuple[int, ...] = ()


@dataclass(frozen=True)
class ExecHandle:
    """A process started by ``exec``; ``console`` is its terminal's master end with ``tty``
    (the caller owns it and closes it)."""

    container_id: str
    exec_id: str
    pid: int
    console: int | None = None


# Whether the kernel OOM-killed a process of this container (asked of the cgroup driver when an
# init dies of SIGKILL): ``lambda cid: driver.oom_killed(handles[cid])``.
OomCheck = Callable[[str], bool]


class ProcessRuntime(Protocol):
    def create(self, spec: ContainerSpec, stdio: Stdio | None = None) -> int: ...
    def start(self, container_id: str) -> None: ...
    def console(self, container_id: str) -> int | None: ...
    def kill(self, container_id: str, signal_number: int) -> None: ...
    def stop(self, container_id: str, grace_seconds: float | None = None) -> ExitStatus: ...
    def wait(self, container_id: str, timeout: float | None = None) -> ExitStatus | None: ...
    def state(self, container_id: str) -> ContainerState: ...
    def pid(self, container_id: str) -> int: ...
    def adopt(self, spec: ContainerSpec, pid: int, start_time: int | None = None) -> None: ...
    def exec(self, container_id: str, spec: ExecSpec, stdio: Stdio | None = None) -> ExecHandle: ...
    def wait_exec(self, handle: ExecHandle, timeout: float | None = None) -> ExitStatus | None: ...
    def delete(self, container_id: str, force: bool = False) -> None: ...
    def containers(self) -> dict[str, ContainerState]: ...
    def close(self, hand_over: bool = False) -> None: ...


@dataclass
class _Container:
    spec: ContainerSpec
    pid: int
    state: ContainerState = ContainerState.CREATED
    exit: ExitStatus | None = None
    start_requested: bool = False
    console: int | None = None
    # Handed over by the fork server at create: release the init, see its exec, get its terminal.
    sync_w: int | None = None
    error_r: int | None = None
    console_socket: socket.socket | None = None
    # Output pipe read ends received from the fork server on a takeover, until take_readers().
    readers: tuple[int, ...] = ()
    # Set once ``exit`` is known (or the fork server is gone): each waiter waits on its own
    # container's event, so an exit wakes only that container's waiters, not every thread.
    ended: threading.Event = field(default_factory=threading.Event)

    def close_handover(self) -> None:
        for fd in (self.sync_w, self.error_r, *self.readers):
            if fd is not None:
                os.close(fd)
        self.readers = ()
        if self.console_socket is not None:
            self.console_socket.close()
        self.sync_w = self.error_r = self.console_socket = None


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None
    fds: list[int] = field(default_factory=list)


class _Trash:
    """Removes deleted containers' directories in the background.

    Removing a directory that was a mount point in a container's (now dead) mount namespace, or
    an overlay work dir whose mount is being torn down, waits for an RCU grace period: several
    milliseconds per directory on a busy host. ``discard`` renames the directory aside at once
    (the path is free again immediately) and a worker thread removes it; ``close`` waits for it.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._run, name="orc-trash", daemon=True)
        self._worker.start()
        self.failures: list[str] = []

    def discard(self, path: Path) -> None:
        aside = path.with_name(f".{path.name}.deleted-{os.urandom(4).hex()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        self._queue.put(aside)

    def _run(self) -> None:
        while (path := self._queue.get()) is not None:
            try:
                shutil.rmtree(path)
            except OSError as exc:
                self.failures.append(f"{path}: {exc}")

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=60)


def _raise_remote(reply: dict[str, Any]) -> None:
    kind = reply.get("kind")
    message = reply.get("error", "fork server error")
    if kind == "start":
        raise ContainerStartError(message, reply.get("step", ""), reply.get("errno", 0))
    if kind == "conflict":
        raise ConflictError(message)
    if kind == "notfound":
        raise NotFoundError(message)
    if kind == "temporary":
        raise TemporaryError(message)
    raise PermanentError(message)


# A pipe holds 64 KiB by default; while no supervisor reads (it died, the next one is not up yet)
# a container that writes blocks once it is full. 1 MiB (the unprivileged maximum) buys time.
OUTPUT_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031


def output_pipe() -> tuple[int, int]:
    """A close-on-exec pipe (read end, write end) for a container's stdout or stderr, enlarged to
    ``OUTPUT_PIPE_BYTES`` where the kernel allows it."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, _F_SETPIPE_SZ, OUTPUT_PIPE_BYTES)
    return read_fd, write_fd


# Each container's spec, pickled, as ``<state_dir>/<id>.spec`` (a runtime that started after its
# fork server died too adopts the container with it). Sessions before 2026-11-27 kept it as
# ``<id>/spec.pickle``; those are still read and removed.
_SPEC_SUFFIX = ".spec"
_OLD_SPEC_FILE = "spec.pickle"
# The one empty directory every init mounts its root filesystem on. The mount happens in the
# init's own mount namespace (after it made every mount a slave), so one directory serves all
# containers and none is created per container: on ext4 without a journal every new inode is
# slower the more were freed recently, and `up`/`down` make and free many.
_ROOTFS_MOUNT = ".rootfs"


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), None if it is gone
    or a zombie: an init that exited but nobody reaped (its new parent, after its fork server
    died, may never reap it) is no container to adopt."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


class ForkServerRuntime:
    """The real ``ProcessRuntime``. ``state_dir`` holds one directory per container (its rootfs
    mount point); ``cache_dir`` holds compiled seccomp programs; ``blank_inits`` is how many
    inits the fork server prepares ahead of time while idle (0: fork each on demand)."""

    def __init__(
        self,
        state_dir: Path,
        cache_dir: Path | None = None,
        oom_check: OomCheck | None = None,
        blank_inits: int = 2,
        python: str = sys.executable,
        inode_pool: InodePool | None = None,
    ) -> None:
        self.state_dir = state_dir
        # Where a container's spec file comes from and goes to (``swapfile.InodePool``).
        self._inode_pool = inode_pool
        self.cache_dir = cache_dir or state_dir / "seccomp-cache"
        self._oom = oom_check
        # Called with a container's id once its exit is recorded (and for every container when
        # the fork server is gone), from the reader thread: it must not block.
        self.exit_hook: Callable[[str], None] | None = None
        prepare_dir(state_dir)
        self._rootfs_mount = state_dir / _ROOTFS_MOUNT
        self._send_lock = threading.Lock()
        self._lock = threading.Condition()
        self._requests = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._containers: dict[str, _Container] = {}
        self._exec_exits: dict[str, ExitStatus] = {}
        self._sigkilled: set[str] = set()  # containers this runtime sent SIGKILL
        self._failed_execs: set[str] = set()
        self._closed = False
        self._trash = _Trash()
        self._server: subprocess.Popen[bytes] | None = None
        self._listen_path = self.state_dir / LISTEN_NAME
        early = take_early(state_dir, self.cache_dir, blank_inits, python)
        if early is not None:  # started by the supervisor before its imports (server.start_early)
            self._sock, self._server = early
            self._start_reader()
            return
        reconnected = self._connect(self._listen_path)
        if reconnected is not None:
            self._sock = reconnected
            self._start_reader()
            try:
                reply, _ = self._request({"op": "list"}, timeout=30.0)
            except TemporaryError:  # it serves another runtime (or just went away): start our own
                self._reader.join(timeout=5)
                reconnected.close()
                self._closed = False
                reconnected = None
        if reconnected is None:
            # A new server has nothing to hand over, so do not wait for it to boot (~0.15 s of
            # Python start-up and imports): the first request queues behind its start instead.
            self._sock, self._server = spawn_fork_server(state_dir, self.cache_dir, blank_inits, python)
            self._start_reader()
            return
        self._take_over(reply)

    def _start_reader(self) -> None:
        self._reader = threading.Thread(target=self._read_loop, name="orc-forkserver-reader", daemon=True)
        self._reader.start()

    @staticmethod
    def _connect(path: Path) -> socket.socket | None:
        """The fork server a previous runtime (that died) left running, if there is one."""
        if not path.exists():
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(path))
        except OSError:
            sock.close()
            return None
        return sock

    def _take_over(self, reply: dict[str, Any]) -> None:
        """Containers a previous runtime started (running, or exited while nobody listened),
        with the read ends of their output pipes."""
        with_readers = [e["spec"].id for e in reply.get("containers", []) if e.get("readers")]
        with_readers += list(reply.get("orphan_readers", {}))
        with self._lock:
            for entry in reply.get("containers", []):
                spec = entry["spec"]
                self._containers[spec.id] = _Container(
                    spec, entry["pid"], state=ContainerState.RUNNING, start_requested=True
                )
            for message in reply.get("exits", []):
                if message.get("exec_id") is None and message["id"] not in self._containers:
                    self._containers[message["id"]] = _Container(
                        message["spec"], message["pid"], state=ContainerState.RUNNING, start_requested=True
                    )
        for container_id in with_readers:
            # One request per container: a single reply could not carry hundreds of descriptors.
            _, fds = self._request({"op": "readers", "id": container_id}, timeout=30.0)
            with self._lock:
                container = self._containers.get(container_id)
                if container is None or container.readers:
                    for fd in fds:
                        os.close(fd)
                    continue
                container.readers = tuple(fds)
        for message in reply.get("exits", []):
            self._on_exit(message)

    def take_readers(self, container_id: str) -> tuple[int, ...]:
        """The read ends of a taken-over container's output pipes (stdout's, then stderr's), as
        given to ``create`` in ``Stdio.readers`` by the runtime that started it; the caller owns
        them. Empty when there are none (or they were taken already)."""
        with self._lock:
            container = self._containers.get(container_id)
            if container is None:
                return ()
            readers, container.readers = container.readers, ()
        return readers

    def containers(self) -> dict[str, ContainerState]:
        """Every container this runtime knows, with its state (after a restart: what it took over)."""
        with self._lock:
            return {cid: c.state for cid, c in self._containers.items()}

    # --- wire ---------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        while True:
            try:
                data, fds = wire.receive(self._sock)
            except OSError:
                data, fds = b"", []
            if not data:
                with self._lock:
                    self._closed = True
                    for waiting in self._pending.values():
                        waiting.reply = {"ok": False, "error": "fork server exited", "kind": "temporary"}
                        waiting.done.set()
                    for known in self._containers.values():
                        known.ended.set()
                    self._lock.notify_all()
                    ended = list(self._containers)
                if self.exit_hook is not None:
                    for container_id in ended:
                        self.exit_hook(container_id)
                return
            message = wire.unpack(data)
            if "req" in message:
                with self._lock:
                    pending = self._pending.pop(message["req"], None)
                if pending is None:
                    for fd in fds:
                        os.close(fd)
                    continue
                pending.reply, pending.fds = message, fds
                pending.done.set()
            elif message.get("event") == "exit":
                self._on_exit(message)

    def _on_exit(self, message: dict[str, Any]) -> None:
        with self._lock:
            container = self._containers.get(message["id"])
        oom = False
        status = message["status"]  # None: an adopted init, whose wait status nobody can read
        killed = status is None or (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL)
        if container is not None and message.get("exec_id") is None and self._oom is not None and killed:
            try:
                oom = self._oom(container.spec.id)
            except Exception:  # a failing callback must not cost the exit itself (or this thread)
                oom = False
        if status is None and message["id"] in self._sigkilled:
            exit_status = ExitStatus(137, signal.SIGKILL, oom, known=False)  # we sent the SIGKILL
        elif status is None:
            exit_status = ExitStatus(137 if oom else 255, signal.SIGKILL if oom else None, oom, known=False)
        else:
            exit_status = ExitStatus.from_wait_status(status, oom)
        with self._lock:
            if message.get("exec_id") is not None:
                if message["exec_id"] in self._failed_execs:
                    self._failed_execs.discard(message["exec_id"])
                else:
                    self._exec_exits[message["exec_id"]] = exit_status
            elif container is not None and container.exit is None:
                container.exit = exit_status
                container.state = ContainerState.STOPPED
                container.ended.set()
            else:
                container = None
            self._lock.notify_all()
        if container is not None and self.exit_hook is not None:
            self.exit_hook(container.spec.id)

    def _request(
        self,
        message: dict[str, Any],
        fds: list[int] | None = None,
        timeout: float | None = 60.0,
        wait: bool = True,
    ) -> tuple[dict[str, Any], list[int]]:
        """Send ``message`` and return the server's answer; with ``wait`` False return at once
        (an empty answer): no pending entry is kept, so the reader drops the answer."""
        pending = _Pending()
        with self._lock:
            if self._closed:
                raise TemporaryError("fork server is not running")
            req = next(self._requests)
            if wait:
                self._pending[req] = pending
        message["req"] = req
        data = wire.pack(message)
        try:
            with self._send_lock:
                socket.send_fds(self._sock, [data], fds or [])
        except OSError as exc:
            raise TemporaryError(f"fork server unreachable: {exc}") from exc
        if not wait:
            return {}, []
        if not pending.done.wait(timeout):
            raise TemporaryError(f"fork server did not answer {message['op']} within {timeout}s")
        assert pending.reply is not None
        if not pending.reply.get("ok"):
            _raise_remote(pending.reply)
        return pending.reply, pending.fds

    def _get(self, container_id: str) -> _Container:
        with self._lock:
            container = self._containers.get(container_id)
        if container is None:
            raise NotFoundError(f"no container {container_id}")
        return container

    def _spec_path(self, container_id: str) -> Path:
        return self.state_dir / f"{container_id}{_SPEC_SUFFIX}"

    def _drop_spec_file(self, container_id: str) -> None:
        path = self._spec_path(container_id)
        if self._inode_pool is not None:
            self._inode_pool.give(path)
        else:
            path.unlink(missing_ok=True)

    def _forget_spec(self, container_id: str) -> None:
        self._drop_spec_file(container_id)
        self._trash.discard(self.state_dir / container_id)  # a spec kept the old way, if any

    # --- lifecycle ----------------------------------------------------------------------------

    def create(self, spec: ContainerSpec, stdio: Stdio | None = None) -> int:
        """Fork the container's init, blocked before its mounts; return its pid (host view)."""
        validate_spec(spec)
        with self._lock:
            existing = self._containers.get(spec.id)
            if existing is not None and existing.state is not ContainerState.DELETED:
                raise ConflictError(f"container {spec.id} already exists ({existing.state.value})")
        fds, owned = self._stdio_fds(stdio, spec.log_path)
        readers = list(stdio.readers) if stdio is not None else []
        try:
            # Another runtime on this directory that closed may have removed it (no new inode
            # when it exists: mkdir fails with EEXIST).
            self._rootfs_mount.mkdir(exist_ok=True)
            # For adopt_recorded(): a runtime whose fork server died too still knows the spec.
            overwrite(self._spec_path(spec.id), wire.pack(spec), 0o600, self._inode_pool)
            try:
                reply, handed = self._request(
                    {
                        "op": "create",
                        "spec": spec,
                        "rootfs_mount": str(self._rootfs_mount),
                        "readers": len(readers),
                    },
                    fds + readers,
                )
            except OrcError:
                self._drop_spec_file(spec.id)
                raise
        finally:
            for fd in owned:
                os.close(fd)
        ready_r = handed[0]
        container = _Container(spec, reply["pid"], sync_w=handed[1], error_r=handed[2])
        if len(handed) > 3:
            container.console_socket = socket.socket(fileno=handed[3])
        with self._lock:
            self._containers[spec.id] = container
        try:
            ready = wire.read_until_eof(ready_r, timeout=30)
        except TimeoutError:
            ready = b""
        finally:
            os.close(ready_r)
        if not ready:
            self._abandon(container)
        return int(reply["pid"])

    def _abandon(self, container: _Container) -> NoReturn:
        """The init failed before it was ready: raise its error once its exit is recorded."""
        assert container.error_r is not None
        try:
            report = wire.read_until_eof(container.error_r, timeout=30)
        except TimeoutError:
            report = b""
        step, message, error_number = wire.parse_child_report(report)
        container.close_handover()
        self.wait(container.spec.id, timeout=10)  # the server reaps it; the id is free after that
        with self._lock:
            self._containers.pop(container.spec.id, None)
        self._forget_spec(container.spec.id)
        raise ContainerStartError(f"container {container.spec.id}: {step}: {message}", step, error_number)

    def _stdio_fds(self, stdio: Stdio | None, log_path: str | None) -> tuple[list[int], list[int]]:
        stdio = stdio or Stdio()
        owned: list[int] = []

        def opened(fd: int) -> int:
            owned.append(fd)
            return fd

        stdin = (
            stdio.stdin
            if stdio.stdin is not None
            else opened(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        )
        if log_path is not None and (stdio.stdout is None or stdio.stderr is None):
            log = opened(os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640))
        else:
            log = opened(os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC))
        stdout = stdio.stdout if stdio.stdout is not None else log
        stderr = stdio.stderr if stdio.stderr is not None else log
        return [stdin, stdout, stderr], owned

    def start(self, container_id: str) -> None:
        """Release the init: it finishes mounts, drops privileges and execs. Raises the child's
        own error (``ContainerStartError``) if it failed before exec."""
        container = self._get(container_id)
        with self._lock:
            check_transition(container_id, container.state, ContainerState.RUNNING)
            if container.start_requested:
                raise InvalidStateError(f"container {container_id}: already starting")
            container.start_requested = True
        try:
            console = self._release(container)
        except ContainerStartError:
            self.wait(container_id, timeout=10.0)
            raise
        with self._lock:
            container.console = console
            if container.state is ContainerState.CREATED:
                container.state = ContainerState.RUNNING

    def _release(self, container: _Container, timeout: float = 60.0) -> int | None:
        """Write the init's release byte and read its error pipe to EOF (its exec); returns the
        terminal master of a tty container."""
        cid = container.spec.id
        sync_w, error_r, console_socket = container.sync_w, container.error_r, container.console_socket
        if sync_w is None or error_r is None:
            raise InvalidStateError(f"container {cid}: already started")
        container.sync_w = container.error_r = container.console_socket = None
        master = None
        try:
            try:
                os.write(sync_w, b"\x01")
            except BrokenPipeError as exc:
                raise ContainerStartError(f"container {cid}: its init died before start", "release") from exc
            finally:
                os.close(sync_w)
            if console_socket is not None:
                master = wire.receive_console(console_socket, error_r, timeout)
            report = wire.read_until_eof(error_r, timeout)
        except TimeoutError as exc:
            raise TemporaryError(f"container {cid}: no exec within {timeout}s") from exc
        finally:
            os.close(error_r)
            if console_socket is not None:
                console_socket.close()
        if report:
            if master is not None:
                os.close(master)
            step, message, error_number = wire.parse_child_report(report)
            raise ContainerStartError(f"container {cid}: {step}: {message}", step, error_number)
        return master

    def console(self, container_id: str) -> int | None:
        """For a ``tty`` container, the terminal's master end (read its output, write its input);
        owned by the runtime and closed on delete. None without a tty."""
        return self._get(container_id).console

    def kill(self, container_id: str, signal_number: int, wait: bool = True) -> None:
        """Signal the container's init. With ``wait`` False the fork server's answer is not
        waited for (the send does not block: a caller in an event loop may use it); an error
        there then goes unseen, and whoever stops the container waits for its exit anyway."""
        container = self._get(container_id)
        with self._lock:
            if container.state not in (ContainerState.CREATED, ContainerState.RUNNING):
                raise InvalidStateError(
                    f"container {container_id}: cannot signal it, it is {container.state.value}"
                )
        if signal_number == signal.SIGKILL:
            with self._lock:
                self._sigkilled.add(container_id)
        self._request({"op": "signal", "id": container_id, "signal": signal_number}, wait=wait)

    def stop(self, container_id: str, grace_seconds: float | None = None) -> ExitStatus:
        """Send the stop signal, wait up to the grace period, then SIGKILL; return the exit status."""
        container = self._get(container_id)
        grace = container.spec.stop_grace_seconds if grace_seconds is None else grace_seconds
        self.begin_stop(container_id)
        status = self.wait(container_id, timeout=grace)
        if status is None:
            with contextlib.suppress(InvalidStateError):
                self.kill(container_id, signal.SIGKILL)
            status = self.wait(container_id, timeout=30.0)
        if status is None:
            raise TemporaryError(f"container {container_id} did not die after SIGKILL", retry_after=1.0)
        return status

    def begin_stop(self, container_id: str, wait: bool = True) -> None:
        """The first step of :meth:`stop`: its stop signal to a running container, SIGKILL to
        one not released yet, nothing to one that is no longer either (for a caller that waits
        for the exit its own way; ``wait`` as for :meth:`kill`)."""
        container = self._get(container_id)
        with contextlib.suppress(InvalidStateError):
            stop_signal = (
                container.spec.stop_signal if container.state is ContainerState.RUNNING else signal.SIGKILL
            )
            self.kill(container_id, stop_signal, wait=wait)

    def wait(self, container_id: str, timeout: float | None = None) -> ExitStatus | None:
        container = self._get(container_id)
        with self._lock:
            if container.exit is not None or self._closed:
                return container.exit
        container.ended.wait(timeout)
        with self._lock:
            return container.exit

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the connection to the fork server is gone (it exited, or ``close``); True
        if it is."""
        with self._lock:
            return self._lock.wait_for(lambda: self._closed, timeout)

    def state(self, container_id: str) -> ContainerState:
        return self._get(container_id).state

    def pid(self, container_id: str) -> int:
        return self._get(container_id).pid

    def adopt(self, spec: ContainerSpec, pid: int, start_time: int | None = None) -> None:
        """Take over a running container this runtime did not start (its fork server died, e.g.
        with a supervisor that was killed): ``pid`` is its init, ``start_time`` (field 22 of
        /proc/<pid>/stat, as recorded at start) guards against a reused pid. It becomes
        ``running``: signals go through a pidfd, exec works as usual, and its exit is noticed
        through the pidfd, with ``ExitStatus.known`` False since its status went to another parent.
        """
        validate_spec(spec)
        if start_time is not None and process_start_time(pid) != start_time:
            raise NotFoundError(f"container {spec.id}: its init (pid {pid}) is gone")
        container = _Container(spec, pid, state=ContainerState.RUNNING, start_requested=True)
        with self._lock:
            existing = self._containers.get(spec.id)
            if existing is not None and existing.state is not ContainerState.DELETED:
                raise ConflictError(f"container {spec.id} already exists ({existing.state.value})")
            # Known before the server watches it: an init that dies right after the server took
            # it reports its exit on the reader thread, possibly before the reply is seen here.
            self._containers[spec.id] = container
        try:
            self._request({"op": "adopt", "spec": spec, "pid": pid})
        except BaseException:
            with self._lock:
                if self._containers.get(spec.id) is container:
                    del self._containers[spec.id]
            raise

    def adopt_recorded(self, container_id: str, pid: int, start_time: int | None) -> None:
        """``adopt`` with the spec a runtime on this ``state_dir`` recorded when it created the
        container (its fork server died with the runtime, so nothing else remembers it).
        ``NotFoundError`` if no spec was recorded or the process is gone."""
        path = self._spec_path(container_id)
        if not path.exists():
            path = self.state_dir / container_id / _OLD_SPEC_FILE
        try:
            spec = wire.unpack(path.read_bytes())
        except (OSError, wire.UnpicklingError, EOFError) as exc:
            raise NotFoundError(f"container {container_id}: no recorded spec to adopt it with") from exc
        self.adopt(spec, pid, start_time)

    def exec(self, container_id: str, spec: ExecSpec, stdio: Stdio | None = None) -> ExecHandle:
        """Run a process in the container's namespaces and cgroups; returns once it exec'd."""
        container = self._get(container_id)
        if container.state is not ContainerState.RUNNING:
            raise InvalidStateError(f"container {container_id}: cannot exec, it is {container.state.value}")
        fds, owned = self._stdio_fds(stdio, None)
        try:
            reply, handed = self._request({"op": "exec", "id": container_id, "exec": spec}, fds)
        finally:
            for fd in owned:
                os.close(fd)
        error_r = handed[0]
        console_socket = socket.socket(fileno=handed[1]) if len(handed) > 1 else None
        master = None
        try:
            if console_socket is not None:
                master = wire.receive_console(console_socket, error_r, 60)
            report = wire.read_until_eof(error_r, timeout=60)
        except TimeoutError as exc:
            raise TemporaryError(f"exec in {container_id}: no exec within 60s") from exc
        finally:
            os.close(error_r)
            if console_socket is not None:
                console_socket.close()
        if report:
            if master is not None:
                os.close(master)
            with self._lock:
                self._failed_execs.add(reply["exec_id"])
                self._exec_exits.pop(reply["exec_id"], None)
            step, message, error_number = wire.parse_child_report(report)
            raise ContainerStartError(f"exec in {container_id}: {step}: {message}", step, error_number)
        return ExecHandle(container_id, reply["exec_id"], reply["pid"], master)

    def wait_exec(self, handle: ExecHandle, timeout: float | None = None) -> ExitStatus | None:
        with self._lock:
            self._lock.wait_for(lambda: handle.exec_id in self._exec_exits or self._closed, timeout)
            return self._exec_exits.pop(handle.exec_id, None)

    def delete(self, container_id: str, force: bool = False) -> None:
        """Forget a stopped container and remove its directories (and overlay upper/work dirs).
        With ``force`` a created or running container is killed first."""
        container = self._get(container_id)
        if force and container.state in (ContainerState.CREATED, ContainerState.RUNNING):
            with contextlib.suppress(InvalidStateError):
                self.kill(container_id, signal.SIGKILL)
            if self.wait(container_id, timeout=30.0) is None:
                raise TemporaryError(f"container {container_id} did not die after SIGKILL")
        with self._lock:
            check_transition(container_id, container.state, ContainerState.DELETED)
        rootfs = container.spec.rootfs
        doomed = []
        if isinstance(rootfs, OverlayRootfs) and rootfs.remove_on_delete:
            doomed += [Path(rootfs.upper_dir), Path(rootfs.work_dir)]
        try:
            self._forget_spec(container_id)
            for path in doomed:
                self._trash.discard(path)
        except OSError as exc:
            raise TemporaryError(f"container {container_id}: cannot remove its files: {exc}") from exc
        with self._lock:
            container.state = ContainerState.DELETED
            del self._containers[container_id]
            self._sigkilled.discard(container_id)
        container.close_handover()
        if container.console is not None:
            os.close(container.console)

    def close(self, hand_over: bool = False) -> None:
        """Stop the fork server. Started containers keep running (they are re-parented); created
        ones that were never started exit (their sync pipe closes). If instead this process dies
        without ``close``, the server stays, still the containers' parent, and a new runtime on
        the same ``state_dir`` takes them over with their exit codes.

        ``hand_over``: while containers still run, leave the server as a dying runtime would
        (disconnect only), so it stays their parent, keeps their output pipes open and their
        exit codes for the next runtime; with nothing running it is stopped as usual."""
        with self._lock:
            containers = list(self._containers.values())
            running = any(c.state is ContainerState.RUNNING and c.exit is None for c in containers)
        for container in containers:
            container.close_handover()
        if hand_over and running and not self._closed:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._reader.join(timeout=5)
            self._trash.close()
            if self._server is not None:
                self._server.returncode = 0  # not ours to wait for any more: no warning at exit
            return
        if not self._closed:
            with contextlib.suppress(OrcError):
                self._request({"op": "shutdown"}, timeout=10.0)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        if self._server is not None:
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
        self._reader.join(timeout=5)
        self._trash.close()
        with contextlib.suppress(OSError):  # in use by another runtime on this directory: kept
            self._rootfs_mount.rmdir()

    def __enter__(self) -> ForkServerRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "ContainerStartError",
    "ContainerState",
    "ExecHandle",
    "ExecSpec",
    "ExitStatus",
    "ForkServerRuntime",
    "InvalidStateError",
    "OomCheck",
    "ProcessRuntime",
    "Stdio",
    "check_transition",
    "process_start_time",
]
