"""Finding, starting and talking to a project's supervisor, from a (single-threaded) CLI process.

Owned here: :func:`running_supervisor` (the socket of a live supervisor, checked by pid + start
time, not by the socket file alone), :func:`spawn_supervisor` (``setsid`` and a double fork so the
supervisor is no child of the CLI and survives the terminal; the CLI waits on a pipe until the
supervisor listens) and :func:`call` (one request, progress events to a callback, the result or
the supervisor's error raised as an ``OrcError``). Used by ``orchestrator.api``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.daemon import protocol
from orchestrator.daemon.spawn import listening_supervisor as running_supervisor
from orchestrator.daemon.spawn import start_supervisor
from orchestrator.errors import OrcError, PermanentError, TemporaryError


class SupervisorUnreachable(TemporaryError):
    """Nothing accepted the connection: no socket, or one whose supervisor is exiting."""


class SupervisorError(OrcError):
    """An error the supervisor reported; carries its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def spawn_supervisor(run_root: Path, lib_root: Path, project: str, cgroup_prefix: str = "orc") -> Path:
    """Start a detached supervisor for ``project`` and return its socket once it listens."""
    return start_supervisor(run_root, lib_root, project, cgroup_prefix)()


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
            raise SupervisorUnreachable(f"cannot reach the supervisor at {path}: {exc.strerror}") from exc
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
