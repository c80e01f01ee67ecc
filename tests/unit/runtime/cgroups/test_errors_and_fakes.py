"""Error mapping at the driver boundary, the host fs helper, and the recording driver."""

from __future__ import annotations

import errno
import signal
from pathlib import Path

import pytest

from orchestrator.errors import ConflictError, PermanentError, TemporaryError
from orchestrator.runtime.cgroups import CgroupDriver, CgroupLimits
from orchestrator.runtime.cgroups.fake import FakeCgroupFs, RecordingCgroupDriver
from orchestrator.runtime.cgroups.fs import HostCgroupFs, map_os_error
from tests.unit.runtime.cgroups.conftest import VirtualClock, driver_for


@pytest.mark.parametrize(
    ("code", "kind", "words"),
    [
        (errno.EACCES, PermanentError, "permission denied"),
        (errno.EPERM, PermanentError, "permission denied"),
        (errno.ENOENT, PermanentError, "does not exist"),
        (errno.EBUSY, TemporaryError, "busy"),
        (errno.EINVAL, PermanentError, "rejected"),
        (errno.ENOSPC, PermanentError, "cpuset"),
    ],
)
def test_os_errors_map_into_the_error_tree(code: int, kind: type, words: str) -> None:
    error = map_os_error(OSError(code, "x"), "write", Path("/cg/pids.max"), "7")
    assert isinstance(error, kind)
    assert words in str(error)
    assert "/cg/pids.max" in str(error) and "'7'" in str(error)


def test_busy_errors_carry_a_short_retry(v2_fake: FakeCgroupFs, clock: VirtualClock) -> None:
    driver = driver_for(v2_fake, clock)
    handle = driver.create("p", "c", CgroupLimits())
    # A cgroup that hands controllers to children may not hold processes (v2 rule).
    project_dir = handle.directories[0].parent
    with pytest.raises(TemporaryError) as info:
        driver._write(project_dir / "cgroup.procs", "99")
    assert info.value.retry_after <= 1.0
    assert isinstance(info.value.__cause__, OSError)


def test_host_fs_reads_and_writes_whole_values(tmp_path: Path) -> None:
    fs = HostCgroupFs()
    target = tmp_path / "memory.max"
    target.write_text("max\n")
    fs.write(target, "1048576")
    assert fs.read(target) == "1048576"
    fs.mkdir(tmp_path / "child")
    assert fs.exists(tmp_path / "child") and sorted(fs.listdir(tmp_path)) == ["child", "memory.max"]
    with pytest.raises(FileExistsError):
        fs.mkdir(tmp_path / "child")
    fs.rmdir(tmp_path / "child")
    with pytest.raises(FileNotFoundError):
        fs.write(tmp_path / "nope", "1")


def test_recording_driver_follows_the_protocol_and_records_calls() -> None:
    driver: CgroupDriver = RecordingCgroupDriver()
    assert isinstance(driver, RecordingCgroupDriver)
    handle = driver.create("web", "c1", CgroupLimits(memory=1 << 20))
    driver.add_process(handle, 5)
    assert driver.pids(handle) == [5]
    driver.freeze(handle)
    assert driver.is_frozen(handle)
    driver.thaw(handle)
    driver.groups[("web", "c1")].oom_kills += 1
    assert driver.oom_killed(handle, since=0)
    assert driver.stats(handle).pids_current == 1
    with pytest.raises(ConflictError):
        driver.remove(handle)
    driver.kill(handle, signal.SIGKILL)
    driver.remove(handle)
    assert driver.open("web", "c1") is None
    assert [c[0] for c in driver.calls] == [
        "create",
        "add_process",
        "freeze",
        "thaw",
        "remove",
        "kill",
        "remove",
        "open",
    ]
    with pytest.raises(PermanentError):
        driver.create("web", "c2", CgroupLimits(cpus=-1))
