"""Finding, starting and talking to a project's supervisor, from a (single-threaded) CLI process.

Owned here: :func:`running_supervisor` (the socket of a live supervisor, checked by pid + start
time, not by the socket file alone), :func:`spawn_supervisor` (``setsid`` and a double fork so the
supervisor is no child of the CLI and survives the terminal; the CLI waits on a pipe until the
supervisor listens) and :func:`call` (one request, progress events to a callback, the result or
the supervisor's error raised as an ``OrcError``). Used by ``orchestrator.api``.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.daemon import protocol
from orchestrator.daemon.protocol import socket_path
from orchestrator.errors import OrcError, PermanentError, TemporaryError
from orchestrator.runtime.launch import module_argv
from orchestrator.state.proc import same_process
from orchestrator.state.store import FileStateStore

READY_TIMEOUT = 60.0


class SupervisorError(OrcError):
    """An error the supervisor reported; carries its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def running_supervisor(run_root: Path, project: str) -> Path | None:
    record = FileStateStore(run_root).load_project(project)
    if record is None or record.supervisor_pid is None or record.supervisor_start_time is None:
        return None
    if not same_process(record.supervisor_pid, record.supervisor_start_time):
        return None
    path = socket_path(run_root, project)
    return path if path.exists() else None


def spawn_supervisor(run_root: Path, lib_root: Path, project: str, cgroup_prefix: str = "orc") -> Path:
    """Start a detached supervisor for ``project`` and return its socket once it listens."""
    return start_supervisor(run_root, lib_root, project, cgroup_prefix)()


def start_supervisor(
    run_root: Path, lib_root: Path, project: str, cgroup_prefix: str = "orc"
) -> Callable[[], Path]:
    """Start a detached supervisor for ``project``; the returned call waits until it listens
    and returns its socket (so the caller can do other work while it boots)."""
    log = run_root / project / "supervisor.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    argv = module_argv(
        "orchestrator.daemon.supervisor",
        "--project",
        project,
        "--run-root",
        str(run_root),
        "--lib-root",
        str(lib_root),
        "--cgroup-prefix",
        cgroup_prefix,
        "--ready-fd",
        str(write_end),
    )
    if os.environ.get("ORC_PROFILE_WRAP"):
        argv = os.environ["ORC_PROFILE_WRAP"].split() + argv
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            os.close(read_end)
            os.set_inheritable(write_end, True)
            null = os.open(os.devnull, os.O_RDONLY)
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.close(write_end)
    os.waitpid(pid, 0)

    def wait_ready() -> Path:
        try:
            ready, _, _ = select.select([read_end], [], [], READY_TIMEOUT)
            answer = os.read(read_end, 64) if ready else b""
        finally:
            os.close(read_end)
        if answer.startswith(b"ready"):
            return socket_path(run_root, project)
        tail = ""
        try:
            tail = log.read_text()[-2000:].strip()
        except OSError:
            pass
        raise PermanentError(
            f"the supervisor of project {project} did not start" + (f":\n{tail}" if tail else "")
        )

    return wait_ready


def call(
    path: Path,
    op: str,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    socket_timeout: float | None = None,
    pass_fds: tuple[int, int, int] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Send one request and return its result; events go to ``on_event`` as they arrive."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(socket_timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise TemporaryError(f"cannot reach the supervisor at {path}: {exc.strerror}") from exc
        request = protocol.encode({"op": op, **fields})
        if pass_fds is not None:
            # The whole request travels in the one message that carries the descriptors.
            if len(request) > 65536:
                raise PermanentError("request too large to pass descriptors with")
            socket.send_fds(sock, [request], list(pass_fds))
        else:
            sock.sendall(request)
        buffer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise PermanentError("the supervisor closed the connection without an answer (see its log)")
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = protocol.decode(line)
                if "event" in message:
                    if on_event is not None:
                        on_event(message["event"])
                    continue
                if message.get("ok"):
                    return dict(message.get("result") or {})
                raise SupervisorError(str(message.get("error")), int(message.get("exit_code") or 1))
    finally:
        sock.close()


def wait_gone(run_root: Path, project: str, timeout: float = 10.0) -> None:
    """Wait until the project's supervisor has exited (after ``down``)."""
    deadline = time.monotonic() + timeout
    while running_supervisor(run_root, project) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
