"""Containers' output pipes drained into their log files by one thread, not by the event loop.

Owned here: :class:`LogPump`, one epoll thread per supervisor that reads every container's
stdout and stderr pipe (or terminal) and hands the bytes to that container's
:class:`~orchestrator.state.logs.LogWriter`. Called by ``reconciler.adapter.KernelRuntime``
when a container starts (``add``) and is removed (``forget``).

Why a thread: draining through the event loop cost two tasks per container plus a wake-up of
the loop per chunk of output, and the loop is what every container's start waits on (a py-spy
profile of ``up -d`` of 100 services put ~20 % of the loop's time into the pumps). Here one
``epoll_wait`` serves them all and log writes never delay the loop.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

CHUNK = 65536

Sink = Callable[[str, bytes], None]


@dataclass
class PumpHandle:
    """The descriptors of one ``add``: ``done`` is set once all of them reached their end, and
    then ``on_done`` is called (in the pump's thread: it must not block)."""

    open: set[int] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)
    on_done: Callable[[], None] | None = None

    def finish(self) -> None:
        self.done.set()
        if self.on_done is not None:
            self.on_done()


@dataclass
class _Source:
    stream: str
    sink: Sink | None
    group: PumpHandle


class LogPump:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._sources: dict[int, _Source] = {}
        self._lock = threading.Lock()  # held while a descriptor is read or dropped
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._closing = False
        self._thread: threading.Thread | None = None

    def add(
        self, sources: Sequence[tuple[int, str]], sink: Sink | None, on_done: Callable[[], None] | None = None
    ) -> PumpHandle:
        """Drain each ``(fd, stream name)`` into ``sink(stream, data)`` until its end (EOF, or
        EIO from a terminal whose process is gone), then close it. The pump owns the fds.
        The handle's ``done`` is set once every one of them ended, then ``on_done`` called."""
        group = PumpHandle(on_done=on_done)
        with self._lock:
            for fd, stream in sources:
                os.set_blocking(fd, False)
                self._sources[fd] = _Source(stream, sink, group)
                group.open.add(fd)
                self._epoll.register(fd, select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR)
            if not group.open:
                group.finish()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="orc-log-pump", daemon=True)
                self._thread.start()
        return group

    def forget(self, handle: PumpHandle) -> None:
        """Stop draining what ``handle`` still drains (its container is being removed), closing
        those fds; by handle, since a closed fd's number may already name another pipe."""
        with self._lock:
            for fd in list(handle.open):
                if self._sources.get(fd) is not None and self._sources[fd].group is handle:
                    self._drop(fd)

    def close(self) -> None:
        """Stop the thread; what it still drained is closed (the output left is lost with it)."""
        with self._lock:
            self._closing = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for fd in list(self._sources):
                self._drop(fd)
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self) -> None:
        while True:
            try:
                events = self._epoll.poll()
            except InterruptedError:
                continue
            with self._lock:
                if self._closing:
                    return
                for fd, _ in events:
                    if fd == self._wake_r:
                        continue
                    if fd in self._sources:
                        self._drain(fd)

    def _drain(self, fd: int) -> None:
        source = self._sources[fd]
        while True:
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:  # EIO: a terminal's master end once its process is gone
                data = b""
            if not data:
                self._drop(fd)
                return
            if source.sink is not None:
                source.sink(source.stream, data)
            if len(data) < CHUNK:
                return  # drained for now; the next event says when there is more

    def _drop(self, fd: int) -> None:
        source = self._sources.pop(fd)
        with contextlib.suppress(OSError):
            self._epoll.unregister(fd)
        with contextlib.suppress(OSError):
            os.close(fd)
        source.group.open.discard(fd)
        if not source.group.open:
            source.group.finish()
