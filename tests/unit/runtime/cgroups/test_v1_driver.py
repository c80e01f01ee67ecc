"""The v1 backend against a kernel-like fake cgroupfs."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from orchestrator.errors import ConflictError, PermanentError, TemporaryError
from orchestrator.runtime.cgroups import DOCKER_DEFAULT_DEVICES, CgroupLimits, DeviceRule, V1Driver
from orchestrator.runtime.cgroups.fake import V1_UNLIMITED, FakeCgroupFs
from tests.unit.runtime.cgroups.conftest import VirtualClock, driver_for

MiB = 1 << 20


@pytest.fixture
def driver(v1_fake: FakeCgroupFs, clock: VirtualClock) -> V1Driver:
    d = driver_for(v1_fake, clock)
    assert isinstance(d, V1Driver)
    return d


def own(fake: FakeCgroupFs, hierarchy: str) -> Path:
    return fake.root / hierarchy / ("process_api/abc" if hierarchy == "memory" else "")


def test_layout_is_own_cgroup_prefix_project_container_per_hierarchy(
    driver: V1Driver, v1_fake: FakeCgroupFs
) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    expected = {
        own(v1_fake, h) / "orc" / "web" / "c1"
        for h in ("cpu,cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer")
    }
    assert set(handle.directories) == expected
    assert len(handle.directories) == 7
    assert handle.dir_for("cpu") == handle.dir_for("cpuacct")
    assert all(d.is_dir() for d in handle.directories)
    assert {p.name for p in handle.join_files} == {"tasks"}
    assert handle.procs_files == tuple(d / "cgroup.procs" for d in handle.directories)


def test_unset_knobs_are_not_written(driver: V1Driver, v1_fake: FakeCgroupFs) -> None:
    driver.create("web", "warm", CgroupLimits())
    v1_fake.writes.clear()
    driver.create("web", "c1", CgroupLimits(unconfined_devices=True))
    assert v1_fake.writes == []


def test_limits_land_in_the_v1_files(driver: V1Driver) -> None:
    limits = CgroupLimits(
        memory=32 * MiB,
        memory_swap=48 * MiB,
        memory_reservation=16 * MiB,
        memory_swappiness=0,
        cpus=0.5,
        cpu_shares=512,
        cpuset_cpus="1",
        cpuset_mems="0",
        pids_limit=16,
        blkio_weight=300,
    )
    handle = driver.create("web", "c1", limits)
    assert handle.notes == ()

    def read(controller: str, name: str) -> str:
        directory = handle.dir_for(controller)
        assert directory is not None
        return (directory / name).read_text().strip()

    assert read("memory", "memory.limit_in_bytes") == str(32 * MiB)
    assert read("memory", "memory.memsw.limit_in_bytes") == str(48 * MiB)
    assert read("memory", "memory.soft_limit_in_bytes") == str(16 * MiB)
    assert read("memory", "memory.swappiness") == "0"
    assert read("cpu", "cpu.cfs_quota_us") == "50000"
    assert read("cpu", "cpu.cfs_period_us") == "100000"
    assert read("cpu", "cpu.shares") == "512"
    assert read("cpuset", "cpuset.cpus") == "1"
    assert read("pids", "pids.max") == "16"
    assert read("blkio", "blkio.weight") == "300"


def test_memory_alone_gets_dockers_double_swap_total(driver: V1Driver) -> None:
    handle = driver.create("web", "c1", CgroupLimits(memory=32 * MiB))
    memory = handle.dir_for("memory")
    assert memory is not None
    assert (memory / "memory.memsw.limit_in_bytes").read_text().strip() == str(64 * MiB)


def test_memsw_and_memory_are_written_in_the_order_the_kernel_accepts(driver: V1Driver) -> None:
    # The fake refuses memory > memsw and memsw < memory, like the kernel.
    handle = driver.create("web", "c1", CgroupLimits(memory=64 * MiB, memory_swap=64 * MiB))
    memory = handle.dir_for("memory")
    assert memory is not None
    driver.update(handle, CgroupLimits(memory=128 * MiB, memory_swap=256 * MiB))
    assert (memory / "memory.limit_in_bytes").read_text().strip() == str(128 * MiB)
    driver.update(handle, CgroupLimits(memory=16 * MiB, memory_swap=16 * MiB))
    assert (memory / "memory.memsw.limit_in_bytes").read_text().strip() == str(16 * MiB)
    driver.update(handle, CgroupLimits(memory=32 * MiB, memory_swap=-1))
    assert (memory / "memory.memsw.limit_in_bytes").read_text().strip() == str(V1_UNLIMITED)
    assert (memory / "memory.limit_in_bytes").read_text().strip() == str(32 * MiB)


def test_no_swap_accounting_drops_explicit_swap_with_a_note(tmp_path: Path, clock: VirtualClock) -> None:
    fake = FakeCgroupFs.v1(tmp_path, swap_accounting=False)
    driver = driver_for(fake, clock)
    quiet = driver.create("p", "a", CgroupLimits(memory=32 * MiB))
    assert quiet.notes == ()
    loud = driver.create("p", "b", CgroupLimits(memory=32 * MiB, memory_swap=64 * MiB))
    assert any("swap accounting" in note for note in loud.notes)


def test_blkio_weight_falls_back_to_bfq_or_is_skipped_with_a_note(
    tmp_path: Path, clock: VirtualClock
) -> None:
    bfq = FakeCgroupFs.v1(tmp_path / "a", blkio_files=("blkio.bfq.weight",))
    handle = driver_for(bfq, clock).create("p", "c", CgroupLimits(blkio_weight=200))
    blkio = handle.dir_for("blkio")
    assert blkio is not None and (blkio / "blkio.bfq.weight").read_text().strip() == "200"
    bare = FakeCgroupFs.v1(tmp_path / "b", blkio_files=())
    handle = driver_for(bare, clock).create("p", "c", CgroupLimits(blkio_weight=200))
    assert any("blkio.weight" in note for note in handle.notes)


def test_device_policy_is_deny_all_then_dockers_allow_list(driver: V1Driver) -> None:
    extra = DeviceRule("c", 10, 229)
    handle = driver.create("web", "c1", CgroupLimits(extra_devices=(extra,)))
    devices = handle.dir_for("devices")
    assert devices is not None
    listed = (devices / "devices.list").read_text().split("\n")
    assert [line for line in listed if line] == [r.line() for r in (*DOCKER_DEFAULT_DEVICES, extra)]
    assert "a *:* rwm" not in listed


def test_unconfined_devices_inherit_the_parent_list(driver: V1Driver) -> None:
    handle = driver.create("web", "c1", CgroupLimits(unconfined_devices=True))
    devices = handle.dir_for("devices")
    assert devices is not None
    assert (devices / "devices.list").read_text().strip() == "a *:* rwm"


def test_cpuset_cpus_and_mems_reach_containers_without_per_container_writes(
    driver: V1Driver, v1_fake: FakeCgroupFs
) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    cpuset = handle.dir_for("cpuset")
    assert cpuset is not None
    assert (cpuset / "cpuset.cpus").read_text().strip() == "0-1"
    assert (cpuset / "cpuset.mems").read_text().strip() == "0"
    # A process can join (an empty cpuset would refuse it with ENOSPC).
    driver.add_process(handle, 777)
    assert driver.pids(handle) == [777]
    assert all(v1_fake.pids_of(d) == [777] for d in handle.directories)


def test_cpuset_outside_the_parent_is_refused_by_the_kernel(driver: V1Driver, v1_fake: FakeCgroupFs) -> None:
    with pytest.raises(PermanentError, match="rejected"):
        driver.create("web", "c1", CgroupLimits(cpuset_cpus="5"))
    # The half-made container cgroups were rolled back.
    assert not (v1_fake.root / "cpuset" / "orc" / "web" / "c1").exists()


def test_create_reuses_leftover_directories(driver: V1Driver) -> None:
    first = driver.create("web", "c1", CgroupLimits(pids_limit=5))
    second = driver.create("web", "c1", CgroupLimits(pids_limit=7))
    assert first.directories == second.directories
    pids = second.dir_for("pids")
    assert pids is not None and (pids / "pids.max").read_text().strip() == "7"


def test_open_finds_existing_cgroups_only(driver: V1Driver) -> None:
    assert driver.open("web", "c1") is None
    created = driver.create("web", "c1", CgroupLimits())
    opened = driver.open("web", "c1")
    assert opened is not None and opened.directories == created.directories


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "x\0"])
def test_names_that_escape_the_subtree_are_refused(driver: V1Driver, bad: str) -> None:
    with pytest.raises(PermanentError):
        driver.create(bad, "c1", CgroupLimits())
    with pytest.raises(PermanentError):
        driver.create("web", bad, CgroupLimits())


def test_freeze_waits_through_freezing_and_thaw(
    driver: V1Driver, v1_fake: FakeCgroupFs, clock: VirtualClock
) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    v1_fake.freezing_reads = 3
    driver.freeze(handle)
    assert driver.is_frozen(handle)
    assert len(clock.sleeps) == 3
    driver.thaw(handle)
    assert not driver.is_frozen(handle)


def test_freeze_that_never_completes_thaws_and_is_temporary(driver: V1Driver, v1_fake: FakeCgroupFs) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    v1_fake.freezing_reads = 10**6
    with pytest.raises(TemporaryError):
        driver.freeze(handle, timeout=0.5)
    freezer = handle.dir_for("freezer")
    assert freezer is not None and (freezer / "freezer.state").read_text().strip() == "THAWED"


def test_stats_parse_the_v1_files(driver: V1Driver, v1_fake: FakeCgroupFs) -> None:
    handle = driver.create("web", "c1", CgroupLimits(memory=32 * MiB, pids_limit=16))
    cpu, memory, pids = handle.dir_for("cpuacct"), handle.dir_for("memory"), handle.dir_for("pids")
    assert cpu is not None and memory is not None and pids is not None
    v1_fake.poke(cpu / "cpuacct.usage", "1500000000")
    v1_fake.poke(cpu / "cpuacct.usage_percpu", "1000000000 500000000 ")
    v1_fake.poke(cpu / "cpuacct.usage_user", "1200000000")
    v1_fake.poke(cpu / "cpu.stat", "nr_periods 10\nnr_throttled 4\nthrottled_time 2000")
    v1_fake.poke(memory / "memory.usage_in_bytes", str(10 * MiB))
    v1_fake.poke(memory / "memory.stat", f"cache 5\ntotal_cache {2 * MiB}\ntotal_inactive_file {MiB}")
    v1_fake.poke(memory / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2")
    driver.add_process(handle, 11)
    driver.add_process(handle, 12)
    stats = driver.stats(handle)
    assert stats.cpu_usage_ns == 1_500_000_000
    assert stats.per_cpu_usage_ns == (1_000_000_000, 500_000_000)
    assert stats.cpu_user_ns == 1_200_000_000
    assert stats.cpu_throttled_periods == 4 and stats.cpu_throttled_ns == 2000
    assert stats.memory_usage == 10 * MiB
    assert stats.memory_limit == 32 * MiB
    assert stats.memory_cache == 2 * MiB
    assert stats.memory_inactive_file == MiB
    assert stats.pids_current == 2 and stats.pids_limit == 16
    assert stats.oom_kills == 2


def test_unlimited_memory_and_pids_read_as_none(driver: V1Driver) -> None:
    stats = driver.stats(driver.create("web", "c1", CgroupLimits()))
    assert stats.memory_limit is None
    assert stats.pids_limit is None


def test_oom_killed_compares_with_a_baseline(driver: V1Driver, v1_fake: FakeCgroupFs) -> None:
    handle = driver.create("web", "c1", CgroupLimits(memory=32 * MiB))
    baseline = driver.oom_kill_count(handle)
    assert baseline == 0 and not driver.oom_killed(handle, baseline)
    memory = handle.dir_for("memory")
    assert memory is not None
    v1_fake.poke(memory / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1")
    assert driver.oom_killed(handle, baseline)
    assert not driver.oom_killed(handle, since=1)


def test_kill_freezes_signals_every_pid_and_thaws(driver: V1Driver, v1_fake: FakeCgroupFs) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    for pid in (21, 22, 23):
        driver.add_process(handle, pid)
    freezer = handle.dir_for("freezer")
    assert freezer is not None
    driver.kill(handle)
    assert sorted(v1_fake.signals) == [(21, signal.SIGKILL), (22, signal.SIGKILL), (23, signal.SIGKILL)]
    assert driver.pids(handle) == []
    states = [value for path, value in v1_fake.writes if path.name == "freezer.state"]
    assert states[0] == "FROZEN" and states[-1] == "THAWED"


def test_kill_with_sigterm_signals_once_and_does_not_wait(driver: V1Driver, v1_fake: FakeCgroupFs) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    driver.add_process(handle, 31)
    driver.kill(handle, signal.SIGTERM)
    assert v1_fake.signals == [(31, signal.SIGTERM)]
    assert driver.pids(handle) == [31]


def test_remove_refuses_while_processes_live_unless_asked_to_kill(
    driver: V1Driver, v1_fake: FakeCgroupFs
) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    driver.add_process(handle, 41)
    with pytest.raises(ConflictError):
        driver.remove(handle)
    driver.remove(handle, kill=True)
    assert not any(d.exists() for d in handle.directories)


def test_remove_retries_briefly_on_ebusy(
    driver: V1Driver, v1_fake: FakeCgroupFs, clock: VirtualClock
) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    v1_fake.busy_rmdirs = 3
    driver.remove(handle)
    assert not any(d.exists() for d in handle.directories)
    assert len(clock.sleeps) == 3


def test_remove_that_stays_busy_is_temporary(driver: V1Driver, v1_fake: FakeCgroupFs) -> None:
    handle = driver.create("web", "c1", CgroupLimits())
    v1_fake.busy_rmdirs = 10**6
    with pytest.raises(TemporaryError):
        driver.remove(handle, timeout=0.2)


def test_remove_project_leaves_nothing_of_ours(driver: V1Driver, v1_fake: FakeCgroupFs) -> None:
    before = sorted(p for p in v1_fake.root.rglob("*") if p.is_dir())
    a = driver.create("web", "a", CgroupLimits())
    driver.create("db", "b", CgroupLimits())
    driver.remove(a)
    assert driver.remove_project("web")
    assert (own(v1_fake, "memory") / "orc" / "db").is_dir()
    assert not driver.remove_project("db")  # b is still there
    driver.remove(driver.open("db", "b"))  # type: ignore[arg-type]
    assert driver.remove_project("db")
    assert sorted(p for p in v1_fake.root.rglob("*") if p.is_dir()) == before


def test_a_project_still_in_use_stays_prepared_after_remove_project(
    driver: V1Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver.create("web", "a", CgroupLimits())
    driver.remove(driver.create("web", "b", CgroupLimits()))
    assert not driver.remove_project("web")  # a is still there
    prepared: list[str] = []
    prepare = driver._prepare_project
    monkeypatch.setattr(
        driver, "_prepare_project", lambda project: (prepared.append(project), prepare(project))
    )
    driver.create("web", "c", CgroupLimits())
    assert prepared == []  # a read and a mkdir per hierarchy, for nothing
    assert driver.remove_project("db")  # never made: nothing to remove, and "db" is not prepared
    driver.remove(driver.open("web", "a"))  # type: ignore[arg-type]
    driver.remove(driver.open("web", "c"))  # type: ignore[arg-type]
    assert driver.remove_project("web")
    driver.create("web", "d", CgroupLimits())
    assert prepared == ["web"]  # removed: made again


def test_missing_controller_for_a_requested_limit_is_permanent(tmp_path: Path, clock: VirtualClock) -> None:
    fake = FakeCgroupFs.v1(tmp_path, {"memory": ("memory",), "freezer": ("freezer",)})
    driver = driver_for(fake, clock)
    with pytest.raises(PermanentError, match="pids"):
        driver.create("p", "c", CgroupLimits(pids_limit=10))
    assert driver.create("p", "c", CgroupLimits(memory=8 * MiB)).dir_for("pids") is None


def test_parents_removed_behind_our_back_are_made_again(driver: V1Driver, v1_fake: FakeCgroupFs) -> None:
    driver.remove(driver.create("web", "a", CgroupLimits()))
    other = driver_for(v1_fake, VirtualClock())
    assert other.remove_project("web")
    handle = driver.create("web", "b", CgroupLimits())
    assert all(d.is_dir() for d in handle.directories)
    cpuset = handle.dir_for("cpuset")
    assert cpuset is not None and (cpuset / "cpuset.cpus").read_text().strip() == "0-1"


def test_devices_our_own_cgroup_lacks_are_noted_not_fatal(tmp_path: Path, clock: VirtualClock) -> None:
    fake = FakeCgroupFs.v1(tmp_path, own_paths={"devices": "/docker/abc"})
    own_devices = tmp_path / "devices" / "docker" / "abc"
    fake.write(own_devices / "devices.deny", "a")
    for rule in DOCKER_DEFAULT_DEVICES[:-1]:  # everything but tun, as inside a container
        fake.write(own_devices / "devices.allow", rule.line())
    handle = driver_for(fake, clock).create("p", "c", CgroupLimits())
    assert handle.notes == ("devices not allowed to orc's own cgroup, so not to the container: c 10:200 rwm",)
