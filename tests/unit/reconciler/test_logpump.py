"""The log pump: every pipe drained by one thread, in order, closed at its end or on forget."""

from __future__ import annotations

import os
import pty
import threading
from collections.abc import Iterator

import pytest

from orchestrator.reconciler.logpump import LogPump


@pytest.fixture
def pump() -> Iterator[LogPump]:
    pump = LogPump()
    yield pump
    pump.close()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_drains_each_stream_in_order_and_signals_the_end(pump: LogPump) -> None:
    got: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def sink(stream: str, data: bytes) -> None:
        with lock:
            got.append((stream, data))

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    handle = pump.add([(out_r, "stdout"), (err_r, "stderr")], sink)
    big = b"x" * 200_000  # more than one read
    os.write(err_w, b"oops\n")
    for chunk in (big[:100_000], big[100_000:]):
        os.write(out_w, chunk)
    os.close(out_w)
    assert not handle.done.wait(0.2), "done before stderr ended"
    os.close(err_w)
    assert handle.done.wait(5)
    with lock:
        assert b"".join(d for s, d in got if s == "stdout") == big
        assert b"".join(d for s, d in got if s == "stderr") == b"oops\n"
    assert not _is_open(out_r) and not _is_open(err_r)


def test_a_terminal_ends_with_its_process(pump: LogPump) -> None:
    master, slave = pty.openpty()
    got: list[bytes] = []
    handle = pump.add([(master, "stdout")], lambda _, data: got.append(data))
    os.write(slave, b"hello\n")
    os.close(slave)  # EIO on the master end: its end
    assert handle.done.wait(5)
    assert b"".join(got).replace(b"\r", b"") == b"hello\n"


def test_forget_closes_only_its_own_descriptors(pump: LogPump) -> None:
    a_r, a_w = os.pipe()
    first = pump.add([(a_r, "stdout")], None)
    os.close(a_w)
    assert first.done.wait(5)  # a_r is closed now: its number may be handed out again
    b_r, b_w = os.pipe()
    second = pump.add([(b_r, "stdout")], None)
    pump.forget(first)  # must not touch the pipe that may reuse a_r's number
    assert _is_open(b_r) and not second.done.is_set()
    pump.forget(second)
    assert second.done.is_set() and not _is_open(b_r)
    os.close(b_w)


def test_nothing_to_drain_is_done_at_once(pump: LogPump) -> None:
    assert pump.add([], None).done.is_set()


def test_the_end_is_announced_once_after_done(pump: LogPump) -> None:
    calls: list[bool] = []
    seen = threading.Event()
    out_r, out_w = os.pipe()
    handle = pump.add([(out_r, "stdout")], None, lambda: (calls.append(handle.done.is_set()), seen.set()))
    assert not seen.wait(0.1)
    os.close(out_w)
    assert seen.wait(5)
    assert calls == [True]
    nothing: list[int] = []
    assert pump.add([], None, lambda: nothing.append(1)).done.is_set() and nothing == [1]
