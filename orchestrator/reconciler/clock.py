"""Time for the reconciler: the wall clock in production, a virtual one in tests.

Owned here: the :class:`Clock` protocol (``now`` in seconds, ``sleep``), :class:`SystemClock`, and
:class:`VirtualClock`, whose time moves only when every task is blocked (it then jumps to the
earliest pending deadline), so restart backoff, health intervals and retry delays run instantly
and deterministically in unit tests. Used by the executor, the health monitor and the supervisor.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

import anyio


class Clock(Protocol):
    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Monotonic time for intervals; ``wall()`` for timestamps shown to people."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


class VirtualClock:
    """Virtual time starting at ``start``. Run :meth:`autojump` in the test's task group: whenever
    all tasks are blocked it advances to the next sleeper's deadline and wakes it."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), event))
        try:
            await event.wait()
        finally:
            event.set()  # a cancelled sleeper must not pull time forward later

    def advance_to_next(self) -> bool:
        """Jump to the earliest deadline and wake every sleeper due by then. False if none."""
        while self._sleepers and self._sleepers[0][2].is_set():
            heapq.heappop(self._sleepers)
        if not self._sleepers:
            return False
        deadline = self._sleepers[0][0]
        self._now = max(self._now, deadline)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            heapq.heappop(self._sleepers)[2].set()
        return True

    async def autojump(self) -> None:
        """Advance time whenever nothing else can run. Runs until cancelled (asyncio backend)."""
        while True:
            await _all_other_tasks_blocked()
            if not self.advance_to_next():
                await anyio.sleep(0.001)  # nothing sleeping: let real I/O (if any) progress


async def _all_other_tasks_blocked() -> None:
    # anyio.wait_all_tasks_blocked polls every 0.1 s of real time, which makes virtual time crawl;
    # this checks after each turn of the event loop that every other task waits on an unfinished
    # future and no callback (such as a pending cancellation) is queued to run.
    this = asyncio.current_task()
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(0)
        if getattr(loop, "_ready", None):
            continue
        if all(
            task is this or ((waiter := getattr(task, "_fut_waiter", None)) is not None and not waiter.done())
            for task in asyncio.all_tasks()
        ):
            return
