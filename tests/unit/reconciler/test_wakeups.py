"""Wake-ups from helper threads to the event loop: posted keys set the events registered for them."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable

import anyio
import pytest

from orchestrator.reconciler.wakeups import LoopWakeups


async def _with_dispatcher(body: Callable[[LoopWakeups], Awaitable[None]]) -> None:
    wakeups = LoopWakeups()
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(wakeups.run)
            await body(wakeups)
            group.cancel_scope.cancel()
    finally:
        wakeups.close()


def test_a_post_from_another_thread_sets_the_events_of_its_key_only() -> None:
    async def body(wakeups: LoopWakeups) -> None:
        first, second = wakeups.register("exit a"), wakeups.register("exit a")
        other = wakeups.register("exit b")
        threading.Thread(target=wakeups.post, args=("exit a",)).start()
        with anyio.fail_after(5):
            await first.wait()
            await second.wait()
        await anyio.sleep(0.05)
        assert not other.is_set()
        # Each post serves the events registered before it: a new registration waits again.
        again = wakeups.register("exit a")
        await anyio.sleep(0.05)
        assert not again.is_set()
        wakeups.post("exit a")
        with anyio.fail_after(5):
            await again.wait()

    anyio.run(_with_dispatcher, body)


def test_unregistered_events_are_not_set_and_wake_all_sets_the_rest() -> None:
    async def body(wakeups: LoopWakeups) -> None:
        gone = wakeups.register("k")
        kept = wakeups.register("k")
        wakeups.unregister("k", gone)
        wakeups.unregister("k", gone)  # twice: nothing happens
        wakeups.wake_all()
        assert kept.is_set() and not gone.is_set()

    anyio.run(_with_dispatcher, body)


def test_many_posts_while_the_loop_is_busy_are_all_dispatched() -> None:
    """The pipe may fill (it is only a doorbell): the keys are queued, none is lost."""

    async def body(wakeups: LoopWakeups) -> None:
        events = {i: wakeups.register(i) for i in range(100_000)}
        for i in range(100_000):
            wakeups.post(i)
        with anyio.fail_after(10):
            for event in events.values():
                await event.wait()

    anyio.run(_with_dispatcher, body)


@pytest.mark.parametrize("posted_first", [True, False])
def test_register_then_check_never_misses_a_post(posted_first: bool) -> None:
    """The pattern the adapter uses: a post that came before the registration is not kept, but
    the check after registering sees its condition; one after it sets the event."""

    async def body(wakeups: LoopWakeups) -> None:
        done: list[bool] = []
        if posted_first:
            done.append(True)
            wakeups.post("k")
        await anyio.sleep(0.05)
        event = wakeups.register("k")
        if not done:
            threading.Timer(0.05, lambda: (done.append(True), wakeups.post("k"))).start()
            with anyio.fail_after(5):
                await event.wait()
        assert done

    anyio.run(_with_dispatcher, body)
