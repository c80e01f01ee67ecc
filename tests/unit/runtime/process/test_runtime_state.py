"""Lifecycle state machine, exit statuses, the fake runtime, and fork server helpers."""

from __future__ import annotations

import os
import signal

import pytest

from orchestrator.errors import ConflictError, NotFoundError, PermanentError
from orchestrator.runtime.process.fake import FakeProcessRuntime
from orchestrator.runtime.process.forkserver import discover_cgroup_hierarchies
from orchestrator.runtime.process.runtime import (
    ContainerState,
    ExecSpec,
    ExitStatus,
    InvalidStateError,
    check_transition,
)
from orchestrator.runtime.process.sequence import CgroupHierarchy
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
