"""The v2 backend on this host's real cgroup2 mount.

On this hybrid machine the unified hierarchy carries no resource controllers, but its core files
(cgroup.procs, cgroup.freeze, cgroup.events, cgroup.kill, cpu.stat) are real, so the v2 code
paths for joining, freezing, killing, CPU accounting and removal run against the kernel. The
driver is pointed at the cgroup2 mount with our own ``0::`` line; everything lives in
``<own v2 cgroup>/<unique>/proj/`` and is removed pass or fail.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.runtime.cgroups import CgroupHandle, CgroupLimits, DriverOptions, V2Driver, open_driver

pytestmark = pytest.mark.kernel
PROJECT = "proj"


def cgroup2_mount() -> Path | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype == "cgroup2" and fields[3] == "/":
                return Path(fields[4])
    return None


def own_v2_line() -> str:
    with open("/proc/self/cgroup") as f:
        return next(line for line in f if line.startswith("0::"))


@dataclass
class V2Env:
    driver: V2Driver
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spin(self) -> subprocess.Popen[bytes]:
        child = subprocess.Popen([sys.executable, "-c", "while True:\n    pass\n"])
        self.children.append(child)
        return child

    def usage(self, handle: CgroupHandle) -> int:
        value = self.driver.stats(handle).cpu_usage_ns
        assert value is not None
        return value

    def wait_for_usage(self, handle: CgroupHandle, above: int) -> None:
        """CPU time is slow to come on a loaded 2-core host; wait for it up to a few seconds."""
        deadline = time.monotonic() + 5.0
        while self.usage(handle) <= above and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.usage(handle) > above


@pytest.fixture
def env(unique_name: str) -> Iterator[V2Env]:
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 mount on this host")
    driver = open_driver(DriverOptions(root=mount, proc_self_cgroup=own_v2_line(), prefix=unique_name))
    assert isinstance(driver, V2Driver)
    prefix_dir = driver.layout.hierarchies[0].own_dir / unique_name
    env = V2Env(driver)
    try:
        yield env
    finally:
        project_dir = prefix_dir / PROJECT
        if project_dir.exists():
            for container in project_dir.iterdir():
                if container.is_dir():
                    handle = driver.open(PROJECT, container.name)
                    if handle is not None:
                        driver.remove(handle, kill=True)
        for child in env.children:
            if child.poll() is None:
                child.kill()
            child.wait()
        driver.remove_project(PROJECT)
        assert not prefix_dir.exists(), f"left behind: {prefix_dir}"


def test_v2_join_freeze_thaw_and_cpu_accounting(env: V2Env) -> None:
    v2 = env.driver
    handle = v2.create(PROJECT, "spin", CgroupLimits())
    child = env.spin()
    v2.add_process(handle, child.pid)
    assert v2.pids(handle) == [child.pid]
    env.wait_for_usage(handle, above=50_000_000)
    v2.freeze(handle)
    assert v2.is_frozen(handle)
    frozen_at = env.usage(handle)
    time.sleep(0.2)
    assert env.usage(handle) - frozen_at < 10_000_000
    v2.thaw(handle)
    assert not v2.is_frozen(handle)
    env.wait_for_usage(handle, above=frozen_at + 50_000_000)


def test_v2_remove_kills_through_cgroup_kill_and_leaves_nothing(env: V2Env) -> None:
    v2 = env.driver
    handle = v2.create(PROJECT, "gone", CgroupLimits())
    children = [env.spin() for _ in range(3)]
    for child in children:
        v2.add_process(handle, child.pid)
    v2.remove(handle, kill=True)
    assert [c.wait(timeout=5) for c in children] == [-signal.SIGKILL] * 3
    assert not handle.directories[0].exists()
    assert v2.remove_project(PROJECT)
