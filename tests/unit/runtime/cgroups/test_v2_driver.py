"""The v2 backend against a kernel-like fake unified hierarchy."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from orchestrator.errors import PermanentError, TemporaryError
from orchestrator.runtime.cgroups import CgroupLimits, V2Driver
from orchestrator.runtime.cgroups.fake import FakeCgroupFs
from tests.unit.runtime.cgroups.conftest import VirtualClock, driver_for

MiB = 1 << 20


@pytest.fixture
def driver(v2_fake: FakeCgroupFs, clock: VirtualClock) -> V2Driver:
    d = driver_for(v2_fake, clock)
    assert isinstance(d, V2Driver)
    return d


def own(fake: FakeCgroupFs) -> Path:
    return fake.root / "user.slice" / "session-1.scope"


def read(handle_dir: Path, name: str) -> str:
    return (handle_dir / name).read_text().strip()


def test_supervisor_moves_into_a_leaf_and_controllers_are_delegated(
    driver: V2Driver, v2_fake: FakeCgroupFs
) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    base = own(v2_fake)
    assert v2_fake.pids_of(base) == []
    assert v2_fake.pids_of(base / "orc-supervisor") == [4242, 4243]
    for directory in (base, base / "orc", base / "orc" / "web"):
        assert set(read(directory, "cgroup.subtree_control").split()) == {
            "cpu",
            "cpuset",
            "memory",
            "pids",
            "io",
        }
    (directory,) = handle.directories
    assert directory == base / "orc" / "web" / "c1"
    assert read(directory, "cgroup.subtree_control") == ""
    assert handle.join_files == (directory / "cgroup.procs",)


def test_no_move_when_our_cgroup_already_delegates(tmp_path: Path, clock: VirtualClock) -> None:
    fake = FakeCgroupFs.v2(tmp_path, own_path="/svc")
    fake.poke(tmp_path / "svc" / "cgroup.subtree_control", "cpu cpuset io memory pids")
    driver_for(fake, clock).create("p", "c", CgroupLimits())
    assert not (tmp_path / "svc" / "orc-supervisor").exists()


def test_root_cgroup_needs_no_leaf(tmp_path: Path, clock: VirtualClock) -> None:
    fake = FakeCgroupFs.v2(tmp_path, own_path="/", pids_in_own=(1,))
    driver_for(fake, clock).create("p", "c", CgroupLimits(memory=8 * MiB))
    assert not (tmp_path / "orc-supervisor").exists()
    assert fake.pids_of(tmp_path) == [1]


def test_limits_land_in_the_v2_files(driver: V2Driver) -> None:
    handle = driver.create(
        "web",
        "c1",
        CgroupLimits(
            memory=64 * MiB,
            memory_swap=96 * MiB,
            memory_reservation=32 * MiB,
            cpus=1.5,
            cpu_shares=1024,
            cpuset_cpus="0",
            cpuset_mems="0",
            pids_limit=16,
            blkio_weight=1000,
            oom_kill_group=True,
        ),
    )
    (d,) = handle.directories
    assert read(d, "memory.max") == str(64 * MiB)
    assert read(d, "memory.swap.max") == str(32 * MiB)
    assert read(d, "memory.low") == str(32 * MiB)
    assert read(d, "memory.oom.group") == "1"
    assert read(d, "cpu.max") == "150000 100000"
    assert read(d, "cpu.weight") == "100"
    assert read(d, "cpuset.cpus") == "0"
    assert read(d, "pids.max") == "16"
    assert read(d, "io.weight") == "default 10000"
    assert any("CAP_MKNOD" in note for note in handle.notes)


def test_memory_alone_allows_as_much_swap_as_memory(driver: V2Driver) -> None:
    (d,) = driver.create("web", "c1", CgroupLimits(memory=64 * MiB)).directories
    assert read(d, "memory.swap.max") == str(64 * MiB)


def test_unlimited_values_are_written_as_max(driver: V2Driver) -> None:
    (d,) = driver.create("web", "c1", CgroupLimits(memory=-1, cpu_quota_us=-1, pids_limit=0)).directories
    assert read(d, "memory.max") == "max"
    assert read(d, "memory.swap.max") == "max"
    assert read(d, "cpu.max") == "max 100000"
    assert read(d, "pids.max") == "max"


def test_io_bfq_weight_is_preferred_when_present(tmp_path: Path, clock: VirtualClock) -> None:
    fake = FakeCgroupFs.v2(tmp_path, io_files=("io.weight", "io.bfq.weight"))
    (d,) = driver_for(fake, clock).create("p", "c", CgroupLimits(blkio_weight=300)).directories
    assert read(d, "io.bfq.weight") == "300"
    assert read(d, "io.weight") == "default 100"


def test_missing_controller_is_permanent_and_rolls_back(tmp_path: Path, clock: VirtualClock) -> None:
    fake = FakeCgroupFs.v2(tmp_path, controllers=("memory",))
    driver = driver_for(fake, clock)
    with pytest.raises(PermanentError, match="pids"):
        driver.create("p", "c", CgroupLimits(pids_limit=5))
    assert not (tmp_path / "orc" / "p" / "c").exists()


def test_swappiness_and_missing_swap_are_notes_not_errors(tmp_path: Path, clock: VirtualClock) -> None:
    fake = FakeCgroupFs.v2(tmp_path, swap_accounting=False)
    handle = driver_for(fake, clock).create(
        "p", "c", CgroupLimits(memory=8 * MiB, memory_swap=16 * MiB, memory_swappiness=10)
    )
    assert any("swappiness" in note for note in handle.notes)
    assert any("swap.max" in note for note in handle.notes)


def test_freeze_and_thaw_follow_cgroup_events(driver: V2Driver) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    driver.add_process(handle, 51)
    driver.freeze(handle)
    assert driver.is_frozen(handle)
    driver.thaw(handle)
    assert not driver.is_frozen(handle)


def test_kill_uses_cgroup_kill_when_the_kernel_has_it(driver: V2Driver, v2_fake: FakeCgroupFs) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    for pid in (61, 62):
        driver.add_process(handle, pid)
    driver.kill(handle)
    assert driver.pids(handle) == []
    assert any(path.name == "cgroup.kill" for path, _ in v2_fake.writes)
    assert not any(path.name == "cgroup.freeze" for path, _ in v2_fake.writes)


def test_kill_without_cgroup_kill_freezes_and_signals(tmp_path: Path, clock: VirtualClock) -> None:
    fake = FakeCgroupFs.v2(tmp_path, cgroup_kill=False)
    driver = driver_for(fake, clock)
    handle = driver.create("p", "c", CgroupLimits())
    driver.add_process(handle, 71)
    driver.remove(handle, kill=True)
    assert fake.signals == [(71, signal.SIGKILL)]
    assert [v for p, v in fake.writes if p.name == "cgroup.freeze"] == ["1", "0"]
    assert not handle.directories[0].exists()


def test_kill_that_cannot_empty_the_cgroup_is_temporary(tmp_path: Path, clock: VirtualClock) -> None:
    fake = FakeCgroupFs.v2(tmp_path, cgroup_kill=False)
    driver = driver_for(fake, clock)
    handle = driver.create("p", "c", CgroupLimits())
    driver.add_process(handle, 81)
    driver._send_signal = lambda pid, sig: None  # an unkillable process (D state)
    with pytest.raises(TemporaryError, match="survive"):
        driver.kill(handle, timeout=1.0)


def test_stats_parse_the_v2_files(driver: V2Driver, v2_fake: FakeCgroupFs) -> None:
    handle = driver.create("web", "c1", CgroupLimits(memory=64 * MiB, pids_limit=8))
    (d,) = handle.directories
    v2_fake.poke(
        d / "cpu.stat",
        "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 3\nnr_throttled 1\nthrottled_usec 7",
    )
    v2_fake.poke(d / "memory.current", str(3 * MiB))
    v2_fake.poke(d / "memory.stat", f"anon 1\nfile {MiB}\ninactive_file 4096")
    v2_fake.poke(d / "memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0")
    driver.add_process(handle, 91)
    stats = driver.stats(handle)
    assert stats.cpu_usage_ns == 2_000_000
    assert stats.cpu_user_ns == 1_500_000 and stats.cpu_system_ns == 500_000
    assert stats.per_cpu_usage_ns is None
    assert stats.cpu_throttled_periods == 1 and stats.cpu_throttled_ns == 7000
    assert stats.memory_usage == 3 * MiB and stats.memory_limit == 64 * MiB
    assert stats.memory_cache == MiB and stats.memory_inactive_file == 4096
    assert stats.pids_current == 1 and stats.pids_limit == 8
    assert stats.oom_kills == 1
    assert driver.oom_killed(handle, since=0)


def test_remove_and_remove_project_leave_only_the_supervisor_leaf(
    driver: V2Driver, v2_fake: FakeCgroupFs
) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    driver.remove(handle)
    assert driver.remove_project("web")
    base = own(v2_fake)
    assert sorted(p.name for p in base.iterdir() if p.is_dir()) == ["orc-supervisor"]
