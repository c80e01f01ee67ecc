"""Messages between the runtime and the fork server: bytes plus file descriptors over a Unix socket.

Used by ``runtime.py`` (client), ``forkserver.py`` (server and its blank inits) and the console
hand-over; also the error-pipe and console reading that ``start`` does on the client side. Received descriptors are always close-on-exec: ``socket.recv_fds`` ignores its
``flags`` argument, which matters here because a leaked error-pipe end would keep the server from
seeing a container's exec.
"""

from __future__ import annotations

# The C socket module, not ``socket``: the fork server imports this module, and ``socket``'s
# enums and wrappers were ~0.3 MiB of it. Both sides pass their own sockets: a ``socket.socket``
# is a ``_socket.socket`` with Python conveniences, and only the C methods are used here.
import _socket
import array
import marshal
import os
import select
from _socket import socket as Socket

# Messages and specs are pickled with pickle's C half alone: the pure-Python ``pickle`` module
# around it was ~0.2 MiB of each process (the fork server's, and the supervisor's).
try:
    from _pickle import UnpicklingError
    from _pickle import dumps as pack
    from _pickle import loads as unpack
except ImportError:  # a Python without the accelerator
    from pickle import UnpicklingError, dumps as pack, loads as unpack  # noqa: I001

__all__ = ["UnpicklingError", "pack", "unpack"]

MAX_MESSAGE = 1 << 20


def receive(
    sock: Socket, max_fds: int = 8, extra_flags: int = 0, max_bytes: int = MAX_MESSAGE
) -> tuple[bytes, list[int]]:
    """One message and its descriptors (CLOEXEC); ``b""`` when the peer closed."""
    fds = array.array("i")
    data, ancillary, _flags, _addr = sock.recvmsg(
        max_bytes, _socket.CMSG_SPACE(max_fds * fds.itemsize), _socket.MSG_CMSG_CLOEXEC | extra_flags
    )
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


def send(sock: Socket, data: bytes, fds: list[int] | tuple[int, ...] = ()) -> None:
    """``data`` as one message, with ``fds`` (``socket.send_fds``, without ``socket``)."""
    if fds:
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendmsg([data])


def seqpacket_pair() -> tuple[Socket, Socket]:
    """A connected pair of Unix SOCK_SEQPACKET sockets (close-on-exec)."""
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)


def seqpacket_listener() -> Socket:
    """An unbound Unix SOCK_SEQPACKET socket (close-on-exec), to bind and listen on."""
    return Socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)


def accept(listener: Socket) -> Socket:
    """The next connection on ``listener`` (close-on-exec, as ``socket.accept`` makes it)."""
    fd, _address = listener._accept()  # type: ignore[attr-defined]  # the C half of accept()
    return Socket(fileno=fd)


def socket_of(fd: int) -> Socket:
    """A socket object for an open descriptor (its family and type are read from it)."""
    return Socket(fileno=fd)


def read_until_eof(fd: int, timeout: float | None) -> bytes:
    """Everything written to a pipe until its last writer closes it (a successful exec closes a
    CLOEXEC error pipe). Raises TimeoutError if nothing more arrives within ``timeout``."""
    chunks: list[bytes] = []
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    while True:
        if timeout is not None and not poller.poll(int(timeout * 1000)):
            raise TimeoutError(f"no answer on fd {fd} within {timeout}s")
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def receive_console(console: Socket, error_pipe: int, timeout: float) -> int | None:
    """The terminal master a tty container's init sends before exec, or None if it failed first
    (then its report is waiting on ``error_pipe``)."""
    poller = select.poll()
    poller.register(console.fileno(), select.POLLIN)
    poller.register(error_pipe, select.POLLIN | select.POLLHUP)
    if not poller.poll(int(timeout * 1000)):
        raise TimeoutError(f"no console within {timeout}s")
    try:
        _data, fds = receive(console, 1, _socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None
    return fds[0] if fds else None


def child_report(step: str, message: str, error_number: int) -> bytes:
    """What a failing init or exec'd child writes to its error pipe before it exits: marshal,
    which is built in (the fork server, which imports this module, loads no ``json``)."""
    return marshal.dumps((str(step), str(message), int(error_number)))


def parse_child_report(data: bytes) -> tuple[str, str, int]:
    """(step, message, errno) from what :func:`child_report` wrote to an error pipe."""
    try:
        step, message, error_number = marshal.loads(data)
        return str(step), str(message), int(error_number)
    except (ValueError, EOFError, TypeError):
        return "setup", "the child died without a readable report", 0
