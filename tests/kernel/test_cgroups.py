"""The cgroup driver on the real kernel (v1 here): limits bite, events are reported, nothing stays.

Each test gets a driver whose prefix is the test's unique name, so everything it makes lives in
``<own cgroup>/<unique>/proj/...`` in every hierarchy, and the fixture removes it pass or fail.
Workloads are plain Python children that wait on stdin until they are inside the cgroup.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.runtime.cgroups import CgroupDriver, CgroupHandle, CgroupLimits, DriverOptions, open_driver

pytestmark = pytest.mark.kernel
MiB = 1 << 20
PROJECT = "proj"


class Harness:
    def __init__(self, driver: CgroupDriver, prefix: str) -> None:
        self.driver = driver
        self.prefix = prefix
        self.handles: list[CgroupHandle] = []
        self.children: list[subprocess.Popen[bytes]] = []

    def create(self, name: str, limits: CgroupLimits) -> CgroupHandle:
        handle = self.driver.create(PROJECT, name, limits)
        self.handles.append(handle)
        return handle

    def spawn(self, code: str, handle: CgroupHandle | None = None) -> subprocess.Popen[bytes]:
        """A Python child that runs ``code`` once it reads a line (after we placed it)."""
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys\nsys.stdin.readline()\n" + code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.children.append(child)
        if handle is not None:
            self.driver.add_process(handle, child.pid)
        return child

    def go(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.flush()

    def own_dirs(self) -> list[Path]:
        layout = self.driver.layout  # type: ignore[attr-defined]
        return [h.own_dir / self.prefix for h in layout.hierarchies]

    def cleanup(self) -> None:
        for handle in self.handles:
            try:
                self.driver.remove(handle, kill=True)
            except Exception:
                pass
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()
        self.driver.remove_project(PROJECT)


@pytest.fixture
def cg(unique_name: str) -> Iterator[Harness]:
    driver = open_driver(DriverOptions(prefix=unique_name))
    harness = Harness(driver, unique_name)
    try:
        yield harness
    finally:
        harness.cleanup()
        leftovers = [d for d in harness.own_dirs() if d.exists()]
        assert not leftovers, f"cgroups left behind: {leftovers}"


def cpu_seconds(cg: Harness, handle: CgroupHandle) -> float:
    usage = cg.driver.stats(handle).cpu_usage_ns
    assert usage is not None
    return usage / 1e9


BUSY_LOOP = "while True:\n    pass\n"


def test_memory_limit_oom_kills_a_hog_and_the_driver_reports_it(cg: Harness) -> None:
    handle = cg.create("hog", CgroupLimits(memory=32 * MiB, memory_swap=32 * MiB))
    baseline = cg.driver.oom_kill_count(handle)
    hog = cg.spawn("data = b'x' * (256 << 20)\nprint('survived', flush=True)\n", handle)
    cg.go(hog)
    assert hog.wait(timeout=30) == -signal.SIGKILL
    assert cg.driver.oom_killed(handle, since=baseline)
    assert (cg.driver.stats(handle).oom_kills or 0) >= 1


def test_pids_limit_stops_a_bounded_fork_bomb(cg: Harness) -> None:
    handle = cg.create("bomb", CgroupLimits(pids_limit=16))
    bomb = cg.spawn(
        "import os, time\n"
        "made = failed = 0\n"
        "for _ in range(64):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        failed += 1\n"
        "        continue\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    made += 1\n"
        "print(made, failed, flush=True)\n"
        "time.sleep(60)\n",
        handle,
    )
    cg.go(bomb)
    assert bomb.stdout is not None
    made, failed = map(int, bomb.stdout.readline().split())
    try:
        assert made == 15  # the bomb itself is the 16th
        assert failed == 64 - 15
        stats = cg.driver.stats(handle)
        assert stats.pids_current == 16 and stats.pids_limit == 16
        assert len(cg.driver.pids(handle)) == 16
    finally:
        cg.driver.kill(handle)
    assert cg.driver.pids(handle) == []
    assert bomb.wait(timeout=5) == -signal.SIGKILL


def test_half_a_cpu_holds_a_busy_loop_near_fifty_percent(cg: Harness) -> None:
    # An unlimited loop in a sibling cgroup measures what a loop can get on this (shared) host
    # right now, so other load cannot be mistaken for the quota.
    limited = cg.create("spin", CgroupLimits(cpus=0.5))
    control = cg.create("control", CgroupLimits())
    spinners = [cg.spawn(BUSY_LOOP, limited), cg.spawn(BUSY_LOOP, control)]
    for spinner in spinners:
        cg.go(spinner)
    time.sleep(0.2)
    start_limited, start_control = cpu_seconds(cg, limited), cpu_seconds(cg, control)
    start = time.monotonic()
    time.sleep(1.0)
    elapsed = time.monotonic() - start
    share = (cpu_seconds(cg, limited) - start_limited) / elapsed
    available = (cpu_seconds(cg, control) - start_control) / elapsed
    assert share <= 0.6, f"busy loop got {share:.2f} of a core under cpus=0.5"
    assert share >= min(0.4, 0.75 * available), f"cpus=0.5 got {share:.2f}, an unlimited loop {available:.2f}"
    if available > 0.7:
        # The loop could have used more than its quota, so the kernel must have throttled it.
        assert (cg.driver.stats(limited).cpu_throttled_periods or 0) > 0


def test_freeze_stops_the_clock_and_thaw_restarts_it(cg: Harness) -> None:
    handle = cg.create("pause", CgroupLimits())
    spinner = cg.spawn(BUSY_LOOP, handle)
    cg.go(spinner)
    time.sleep(0.1)
    cg.driver.freeze(handle)
    assert cg.driver.is_frozen(handle)
    frozen_at = cpu_seconds(cg, handle)
    time.sleep(0.3)
    assert cpu_seconds(cg, handle) - frozen_at < 0.01
    cg.driver.thaw(handle)
    assert not cg.driver.is_frozen(handle)
    deadline = time.monotonic() + 5.0  # generous: the host's two cores are shared
    while cpu_seconds(cg, handle) - frozen_at < 0.05 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cpu_seconds(cg, handle) - frozen_at >= 0.05


def test_stats_are_sane_for_a_small_workload(cg: Harness) -> None:
    handle = cg.create("stats", CgroupLimits(memory=64 * MiB, pids_limit=32))
    worker = cg.spawn(
        "import time\ndata = b'y' * (16 << 20)\n"
        "while time.process_time() < 0.25:\n    pass\nprint('ready', flush=True)\ntime.sleep(60)\n",
        handle,
    )
    cg.go(worker)
    assert worker.stdout is not None and worker.stdout.readline() == b"ready\n"
    stats = cg.driver.stats(handle)
    assert stats.memory_limit == 64 * MiB
    assert stats.memory_usage is not None and 16 * MiB <= stats.memory_usage <= 64 * MiB
    assert stats.cpu_usage_ns is not None and stats.cpu_usage_ns >= 0.1e9
    if stats.per_cpu_usage_ns is not None:
        assert abs(sum(stats.per_cpu_usage_ns) - stats.cpu_usage_ns) < 0.05e9
    assert stats.pids_current == 1 and stats.pids_limit == 32
    assert stats.oom_kills == 0
    assert cg.driver.pids(handle) == [worker.pid]


def test_device_policy_denies_what_docker_denies(cg: Harness) -> None:
    handle = cg.create("dev", CgroupLimits())
    if handle.dir_for("devices") is None:
        pytest.skip("no v1 devices controller: the policy is the process runtime's on v2")
    probe = cg.spawn(
        "import os\n"
        "os.close(os.open('/dev/null', os.O_WRONLY))\n"
        "try:\n"
        "    os.close(os.open('/dev/kmsg', os.O_RDONLY))\n"
        "    print('kmsg opened', flush=True)\n"
        "except PermissionError:\n"
        "    print('kmsg denied', flush=True)\n",
        handle,
    )
    cg.go(probe)
    out, _ = probe.communicate(timeout=10)
    assert out == b"kmsg denied\n"


def test_a_single_threaded_child_joins_itself_through_join_files(cg: Harness) -> None:
    handle = cg.create("join", CgroupLimits())
    files = " ".join(repr(str(f)) for f in handle.join_files)
    joiner = cg.spawn(
        "import os, time\n"
        f"for name in [{files.replace(' ', ', ')}]:\n"
        "    fd = os.open(name, os.O_WRONLY)\n"
        "    os.write(fd, b'0')\n"
        "    os.close(fd)\n"
        "print('in', flush=True)\n"
        "time.sleep(60)\n"
    )
    cg.go(joiner)
    assert joiner.stdout is not None and joiner.stdout.readline() == b"in\n"
    with open(f"/proc/{joiner.pid}/cgroup") as f:
        lines = f.read()
    assert lines.count(f"/{cg.prefix}/{PROJECT}/join") == len(handle.directories)
    assert cg.driver.pids(handle) == [joiner.pid]


def test_removal_kills_stragglers_and_leaves_nothing(cg: Harness) -> None:
    handle = cg.create("gone", CgroupLimits(memory=32 * MiB, cpus=1, pids_limit=8))
    sleeper = cg.spawn("import time\ntime.sleep(60)\n", handle)
    cg.go(sleeper)
    cg.driver.remove(handle, kill=True)
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert not any(d.exists() for d in handle.directories)
    assert cg.driver.remove_project(PROJECT)
    assert not any(d.exists() for d in cg.own_dirs())


def test_own_cgroup_is_the_parent_of_everything_made(cg: Harness) -> None:
    handle = cg.create("where", CgroupLimits())
    with open("/proc/self/cgroup") as f:
        own = {c: path for _, cs, path in (line.strip().split(":", 2) for line in f) for c in cs.split(",")}
    memory = handle.dir_for("memory")
    assert memory is not None
    expected_suffix = os.path.join(own["memory"].lstrip("/"), cg.prefix, PROJECT, "where")
    assert str(memory).endswith(expected_suffix)
