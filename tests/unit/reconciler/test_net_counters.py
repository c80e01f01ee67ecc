"""``stats`` reads a container's network counters from ``/proc/<pid>/net/dev``: a process that
exits between the liveness check and the read gives zeros, not an error."""

from __future__ import annotations

import os
import subprocess

from orchestrator.reconciler.adapter import _net_counters


def test_counters_of_a_live_process_are_read() -> None:
    received, sent = _net_counters(os.getpid())
    assert received >= 0 and sent >= 0


def test_a_process_gone_before_the_read_gives_zeros() -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its /proc entry is gone
    assert _net_counters(child.pid) == (0, 0)
