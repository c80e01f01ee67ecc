"""Wake-ups from the supervisor's helper threads to its event loop.

Owned here: :class:`LoopWakeups`. Threads that learn something the event loop waits for (the
process runtime's reader thread: a container's exit is recorded; the log pump's thread: a
container's output is drained to its end) ``post`` a key; a task in the event loop waits for
that key with an event it ``register``-ed. One pipe and one dispatching task (:meth:`run`) serve
every key, so such a wait holds no worker thread, and a wake-up costs one pipe write instead of
two hand-overs of the GIL (a thread blocked in a wait, then the result sent back to the loop).
Called by ``reconciler.adapter.KernelRuntime``.

A post is not remembered: a waiter registers first, then checks its condition, then waits. The
dispatcher runs in the event loop, between those steps never, so a post either finds the event
registered or came before the check, which then sees the condition already true.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Hashable

import anyio

from orchestrator.runtime import fdio


class LoopWakeups:
    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._posted: collections.deque[Hashable] = collections.deque()
        self._waiting: dict[Hashable, list[anyio.Event]] = {}

    def post(self, key: Hashable) -> None:
        """Wake what waits for ``key`` (from any thread; never blocks)."""
        self._posted.append(key)
        # A full pipe already holds a wake-up; a closed one belongs to a loop that is gone.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, b"\0")

    def register(self, key: Hashable) -> anyio.Event:
        """An event set by the next post of ``key`` (in the event loop; then check, then wait)."""
        event = anyio.Event()
        self._waiting.setdefault(key, []).append(event)
        return event

    def unregister(self, key: Hashable, event: anyio.Event) -> None:
        events = self._waiting.get(key)
        if events is not None and event in events:
            events.remove(event)
            if not events:
                del self._waiting[key]

    def wake_all(self) -> None:
        """Set every registered event (in the event loop): their waiters check again."""
        waiting, self._waiting = self._waiting, {}
        for events in waiting.values():
            for event in events:
                event.set()

    async def run(self) -> None:
        """Dispatch posts until cancelled (a task of the event loop)."""
        while True:
            await fdio.wait_readable(self._read)
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read, 4096):
                    pass
            while self._posted:
                for event in self._waiting.pop(self._posted.popleft(), ()):
                    event.set()

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)
