"""Lifecycle state machine, exit statuses, the fake runtime, and fork server helpers."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest

from orchestrator.errors import ConflictError, NotFoundError, PermanentError
from orchestrator.runtime.process.fake import FakeProcessRuntime
from orchestrator.runtime.process.forkserver import discover_cgroup_hierarchies, join_cgroups, resolve_device
from orchestrator.runtime.process.runtime import (
    ContainerState,
    ExecSpec,
    ExitStatus,
    InvalidStateError,
    check_transition,
)
from orchestrator.runtime.process.sequence import CgroupHierarchy, StepError
from orchestrator.runtime.process.spec import ContainerSpec, DirectoryRootfs, ProcessSpec


def test_transitions_are_guarded_and_errors_name_both_states() -> None:
    check_transition("c", ContainerState.CREATED, ContainerState.RUNNING)
    check_transition("c", ContainerState.CREATED, ContainerState.STOPPED)
    check_transition("c", ContainerState.STOPPED, ContainerState.DELETED)
    with pytest.raises(InvalidStateError, match="cannot go from running to deleted"):
        check_transition("c", ContainerState.RUNNING, ContainerState.DELETED)
    with pytest.raises(ConflictError, match="cannot go from stopped to running"):
        check_transition("c", ContainerState.STOPPED, ContainerState.RUNNING)


def test_exit_status_from_wait_status() -> None:
    assert ExitStatus.from_wait_status(3 << 8) == ExitStatus(3, None)
    killed = ExitStatus.from_wait_status(signal.SIGKILL, oom_killed=True)
    assert (killed.code, killed.signal, killed.oom_killed) == (137, 9, True)
    assert os.WIFSIGNALED(signal.SIGKILL)


def _spec(cid: str = "web") -> ContainerSpec:
    return ContainerSpec(id=cid, rootfs=DirectoryRootfs("/r"), process=ProcessSpec(args=("sleep", "9")))


def test_fake_runtime_keeps_the_same_lifecycle() -> None:
    rt = FakeProcessRuntime()
    pid = rt.create(_spec())
    assert rt.pid("web") == pid and rt.state("web") is ContainerState.CREATED
    with pytest.raises(ConflictError):
        rt.create(_spec())
    with pytest.raises(ConflictError, match="cannot exec"):
        rt.exec("web", ExecSpec(("true",)))
    rt.start("web")
    with pytest.raises(InvalidStateError):
        rt.start("web")
    rt.exec_results[("false",)] = 1
    handle = rt.exec("web", ExecSpec(("false",)))
    assert rt.wait_exec(handle) == ExitStatus(1, None)
    with pytest.raises(InvalidStateError, match="running to deleted"):
        rt.delete("web")
    assert rt.stop("web").code == 143
    with pytest.raises(PermanentError, match="nothing to signal"):
        rt.kill("web", 15)
    rt.delete("web")
    assert [c[0] for c in rt.calls] == ["create", "start", "exec", "stop", "delete"]
    with pytest.raises(NotFoundError):
        rt.state("nope")


def test_fake_runtime_reports_oom_exits() -> None:
    rt = FakeProcessRuntime()
    rt.create(_spec("hog"))
    rt.start("hog")
    rt.exit("hog", 137, oom_killed=True)
    status = rt.wait("hog", timeout=0)
    assert status is not None and status.oom_killed and status.code == 137


MOUNTINFO = """\
22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
30 22 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
34 1 0:30 / /mnt/cg rw - cgroup cgroup rw,pids
"""


def test_cgroup_hierarchies_are_read_from_mountinfo() -> None:
    assert discover_cgroup_hierarchies(MOUNTINFO) == (
        CgroupHierarchy("memory", "cgroup", "memory"),
        CgroupHierarchy("systemd", "cgroup", "xattr,name=systemd"),
        CgroupHierarchy("unified", "cgroup2", ""),
    )


def test_join_cgroups_moves_the_caller_through_tasks_on_v1_and_cgroup_procs_on_v2(tmp_path: Path) -> None:
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    v1.mkdir()
    v2.mkdir()
    (v1 / "tasks").write_text("")
    (v1 / "cgroup.procs").write_text("")
    (v2 / "cgroup.procs").write_text("")
    join_cgroups((str(v1), str(v2)))
    assert (v1 / "tasks").read_text() == "0" and (v1 / "cgroup.procs").read_text() == ""
    assert (v2 / "cgroup.procs").read_text() == "0"
    with pytest.raises(StepError, match="join cgroups: No such file or directory") as info:
        join_cgroups((str(tmp_path / "gone"),))
    assert info.value.errno == errno.ENOENT


def test_devices_are_resolved_from_the_host_node(tmp_path: Path) -> None:
    null = resolve_device("/dev/null", "/dev/mynull")
    assert (null.path, null.kind, null.major, null.minor) == ("/dev/mynull", "c", 1, 3)
    (tmp_path / "plain").write_text("")
    with pytest.raises(PermanentError, match="not a device node"):
        resolve_device(str(tmp_path / "plain"), "/dev/x")


def test_a_pure_v2_host_has_one_hierarchy_at_the_top() -> None:
    mountinfo = "30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    assert discover_cgroup_hierarchies(mountinfo) == (CgroupHierarchy("", "cgroup2", ""),)


def test_the_fakes_satisfy_the_protocols() -> None:
    from orchestrator.runtime.process.fake import RecordingKernel
    from orchestrator.runtime.process.kernel import Kernel
    from orchestrator.runtime.process.runtime import ProcessRuntime

    runtime: ProcessRuntime = FakeProcessRuntime()
    kernel: Kernel = RecordingKernel()
    runtime.adopt(_spec("old"), 4242)
    assert runtime.state("old") is ContainerState.RUNNING and runtime.pid("old") == 4242
    assert kernel.exists("/nope") is False
