"""Descriptors and sockets awaited in the supervisor's event loop, without anyio's socket module.

Who calls it: the supervisor (its control socket: :func:`unix_listener`, :class:`SocketStream`),
the embedded DNS server (UDP and TCP, forwarding upstream), the published ports' proxy, and the
reconciler's wake-ups, probes and attached ``exec`` pumps (:func:`wait_readable`,
:func:`wait_writable`).

Why not ``anyio.wait_readable``, ``anyio.create_unix_listener`` and friends: anyio's socket
module imports ``ssl`` at its top, and with it OpenSSL — ~4.4 MiB of every supervisor's memory
and ~8 ms of its start — while nothing the supervisor serves uses TLS. (asyncio imports it too:
``runtime.launch`` starts the supervisor with asyncio imported while ``ssl`` is unavailable.)

The supervisor runs on anyio's asyncio backend, so waiting means registering a reader or writer
with the running asyncio loop and awaiting a future; anyio's cancel scopes cancel that await as
any other. Two tasks waiting to read (or to write) the same descriptor at once is an error, as
with anyio. The streams raise anyio's stream exceptions (``EndOfStream``,
``BrokenResourceError``, ``ClosedResourceError``), so ``BufferedByteReceiveStream`` and the
callers' error handling work on them unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import socket
import weakref
from collections.abc import Callable, Coroutine
from typing import TypeVar

import anyio
import anyio.abc

from orchestrator.runtime.process import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class HasFileno(Protocol):
        def fileno(self) -> int: ...


_WAITING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[dict[int, object], dict[int, object]]]
_WAITING = weakref.WeakKeyDictionary()


_T = TypeVar("_T")


def _fileno(target: int | HasFileno) -> int:
    return target if isinstance(target, int) else target.fileno()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _wait(target: int | HasFileno, writing: bool) -> None:
    fd = _fileno(target)
    loop = asyncio.get_running_loop()
    readers, writers = _WAITING.setdefault(loop, ({}, {}))
    waiting = writers if writing else readers
    if fd in waiting:
        raise anyio.BusyResourceError("writing to" if writing else "reading from")
    future: asyncio.Future[None] = loop.create_future()
    if writing:
        loop.add_writer(fd, _wake, future)
    else:
        loop.add_reader(fd, _wake, future)
    waiting[fd] = future
    try:
        await future
    finally:
        del waiting[fd]
        if writing:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def wait_readable(target: int | HasFileno) -> None:
    """Until ``target`` (a descriptor or an object with ``fileno()``) can be read."""
    await _wait(target, writing=False)


async def wait_writable(target: int | HasFileno) -> None:
    """Until ``target`` can be written."""
    await _wait(target, writing=True)


async def _retry(sock: socket.socket, call: Callable[[], _T], writing: bool = False) -> _T:
    """``call()`` on a non-blocking socket, waiting for it to be ready after each
    ``BlockingIOError``."""
    while True:
        try:
            return call()
        except BlockingIOError:
            await _wait(sock, writing)


_BROKEN = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class SocketStream(anyio.abc.ByteStream):
    """A connected non-blocking socket as an anyio byte stream (``receive_fds`` on Unix sockets)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock
        self._closed = False

    async def _io(self, call: Callable[[], _T], writing: bool = False) -> _T:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            return await _retry(self.socket, call, writing)
        except _BROKEN as exc:
            raise anyio.BrokenResourceError from exc

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self._io(lambda: self.socket.recv(max_bytes))
        if not data:
            raise anyio.EndOfStream
        return data

    async def receive_fds(self, max_bytes: int, max_fds: int) -> tuple[bytes, list[int]]:
        """One read that may carry descriptors (SCM_RIGHTS; they arrive close-on-exec).
        ``b""`` and no descriptors when the peer closed."""
        return await self._io(lambda: wire.receive(self.socket, max_fds, max_bytes=max_bytes))

    async def send(self, item: bytes) -> None:
        view = memoryview(item)
        while view:
            view = view[await self._io(functools.partial(self.socket.send, view), writing=True) :]

    async def send_eof(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_WR)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self.socket.close()

    @property
    def remote_host(self) -> str:
        """The peer's address (an IP address's text; a Unix socket's path, often empty)."""
        peer = self.socket.getpeername()
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)


class SocketListener:
    """A listening non-blocking socket whose :meth:`serve` runs a handler per connection."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock

    async def accept(self) -> SocketStream:
        while True:
            try:
                conn, _addr = await _retry(self.socket, self.socket.accept)
            except OSError as exc:
                # The peer gave up before we took it; the listener itself is fine.
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    continue
                raise
            return SocketStream(conn)

    async def serve(self, handler: Callable[[SocketStream], Coroutine[object, object, None]]) -> None:
        """Accept until cancelled; each connection's handler runs as a task of its own."""
        async with anyio.create_task_group() as group:
            while True:
                group.start_soon(handler, await self.accept())

    async def aclose(self) -> None:
        self.socket.close()

    async def __aenter__(self) -> SocketListener:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _socket(
    family: socket.AddressFamily, kind: int, setup: Callable[[socket.socket], object]
) -> socket.socket:
    """A non-blocking close-on-exec socket after ``setup`` (bind, listen, connect...); closed
    again if that fails."""
    sock = socket.socket(family, kind | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    try:
        setup(sock)
    except BaseException:
        sock.close()
        raise
    return sock


def _listen(sock: socket.socket, address: str | tuple[str, int], backlog: int) -> None:
    sock.bind(address)
    sock.listen(backlog)


def unix_listener(path: str | os.PathLike[str], backlog: int = 128) -> SocketListener:
    """A stream socket listening at ``path`` (which must not exist)."""
    return SocketListener(
        _socket(socket.AF_UNIX, socket.SOCK_STREAM, lambda sock: _listen(sock, os.fspath(path), backlog))
    )


def tcp_listener(host: str, port: int, backlog: int = 128) -> SocketListener:
    """A TCP socket listening on ``host`` (an IP address) and ``port`` (0: any free one)."""

    def setup(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _listen(sock, (host, port), backlog)

    return SocketListener(_socket(_family(host), socket.SOCK_STREAM, setup))


def udp_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``host`` (an IP address) and ``port`` (0: any)."""
    return _socket(_family(host), socket.SOCK_DGRAM, lambda sock: sock.bind((host, port)))


def connect_udp(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket connected to ``host`` (an IP address) and ``port``."""
    return _socket(_family(host), socket.SOCK_DGRAM, lambda sock: sock.connect((host, port)))


async def receive_datagram(sock: socket.socket, max_bytes: int = 65536) -> tuple[bytes, tuple[str, int]]:
    """The next datagram on a non-blocking socket and the address it came from."""
    data, address = await _retry(sock, lambda: sock.recvfrom(max_bytes))
    return data, (str(address[0]), int(address[1]))


async def send_datagram(sock: socket.socket, data: bytes, address: tuple[str, int] | None = None) -> None:
    """Send one datagram (to the connected peer when ``address`` is None)."""
    await _retry(sock, lambda: sock.send(data) if address is None else sock.sendto(data, address), True)


async def connect_tcp(host: str, port: int) -> SocketStream:
    """A TCP connection to ``host`` (an IP address) and ``port``; OSError if it is refused."""
    sock = _socket(_family(host), socket.SOCK_STREAM, lambda sock: None)
    try:
        code = sock.connect_ex((host, port))
        if code == errno.EINPROGRESS:
            await wait_writable(sock)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, f"connect to {host}:{port}: {os.strerror(code)}")
    except BaseException:
        sock.close()
        raise
    return SocketStream(sock)
