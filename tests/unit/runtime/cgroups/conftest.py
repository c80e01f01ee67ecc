"""Fixtures for the cgroup driver's unit tests: fake cgroupfs trees and a virtual clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.runtime.cgroups import DriverOptions, V1Driver, V2Driver, open_driver
from orchestrator.runtime.cgroups.fake import FakeCgroupFs


class VirtualClock:
    """monotonic/sleep pair where sleeping only advances the number."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def driver_for(fake: FakeCgroupFs, clock: VirtualClock, prefix: str = "orc") -> V1Driver | V2Driver:
    return open_driver(
        DriverOptions(
            root=fake.root,
            proc_self_cgroup=fake.proc_self_cgroup(),
            fs=fake,
            prefix=prefix,
            send_signal=fake.send_signal,
            monotonic=clock.monotonic,
            sleep=clock.sleep,
        )
    )


@pytest.fixture
def v1_fake(tmp_path: Path) -> FakeCgroupFs:
    return FakeCgroupFs.v1(tmp_path / "cg", own_paths={"memory": "/process_api/abc"}, hybrid=True)


@pytest.fixture
def v2_fake(tmp_path: Path) -> FakeCgroupFs:
    return FakeCgroupFs.v2(tmp_path / "cg", own_path="/user.slice/session-1.scope", pids_in_own=(4242, 4243))
