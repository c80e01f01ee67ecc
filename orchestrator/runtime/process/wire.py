"""Messages between the runtime and the fork server: bytes plus file descriptors over a Unix socket.

Used by ``runtime.py`` (client), ``forkserver.py`` (server and its blank inits) and the console
hand-over. Received descriptors are always close-on-exec: ``socket.recv_fds`` ignores its
``flags`` argument, which matters here because a leaked error-pipe end would keep the server from
seeing a container's exec.
"""

from __future__ import annotations

import array
import socket

MAX_MESSAGE = 1 << 20


def receive(sock: socket.socket, max_fds: int = 8, extra_flags: int = 0) -> tuple[bytes, list[int]]:
    """One message and its descriptors (CLOEXEC); ``b""`` when the peer closed."""
    fds = array.array("i")
    data, ancillary, _flags, _addr = sock.recvmsg(
        MAX_MESSAGE, socket.CMSG_SPACE(max_fds * fds.itemsize), socket.MSG_CMSG_CLOEXEC | extra_flags
    )
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


def send(sock: socket.socket, data: bytes, fds: list[int] | tuple[int, ...] = ()) -> None:
    socket.send_fds(sock, [data], list(fds))
