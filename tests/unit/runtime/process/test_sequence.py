"""The container start and exec sequences, run against the recording kernel: order and failures."""

from __future__ import annotations

import errno
from dataclasses import replace
from typing import Any

import pytest

from orchestrator.runtime.process.capabilities import DEFAULT_CAPABILITIES, mask
from orchestrator.runtime.process.fake import Executed, RecordingKernel
from orchestrator.runtime.process.kernel import CLONE_NEWCGROUP, MS_BIND, MS_RDONLY, MS_REMOUNT
from orchestrator.runtime.process.sequence import (
    DeviceNode,
    ExecPlan,
    StartPlan,
    StepError,
    run_exec,
    run_init,
    secure_join,
)
from orchestrator.runtime.process.spec import (
    BindMount,
    ContainerSpec,
    DirectoryRootfs,
    EtcFiles,
    Init,
    Namespace,
    NamespaceMode,
    Namespaces,
    OverlayRootfs,
    ProcessSpec,
    Rlimit,
    TmpfsMount,
    User,
    VolumeMount,
)
from tests.support.rootfs import GROUP, PASSWD

ROOT = "/run/orc/c1/rootfs"


def kernel() -> RecordingKernel:
    return RecordingKernel(
        files={"/etc/passwd": PASSWD, "/etc/group": GROUP, "/proc/kcore": "", "/proc/sys": ""},
        dirs={"/host/data", "/sys/firmware", "/proc/sys"},
        executables={"/bin/sh", "/usr/bin/env"},
    )


def spec(**changes: Any) -> ContainerSpec:
    base = ContainerSpec(
        id="c1",
        rootfs=OverlayRootfs(("/img/l2", "/img/l1"), "/c/upper", "/c/work"),
        process=ProcessSpec(args=("sh", "-c", "true"), env=(("A", "1"),), cwd="/app", user=User("tester")),
        mounts=(
            BindMount("/host/data", "/data/sub", read_only=True),
            TmpfsMount("/tmp", size_bytes=1 << 20),
            VolumeMount("/vol/db", "/data"),
        ),
        etc_files=EtcFiles(hosts="/run/orc/c1/hosts", resolv_conf="/run/orc/c1/resolv.conf"),
        hostname="web",
        rlimits=(Rlimit("nofile", 1024, 2048),),
        sysctls=(("net.ipv4.ip_forward", "1"),),
        oom_score_adj=100,
    )
    return ContainerSpec(**{**base.__dict__, **changes})


def plan(s: ContainerSpec, program: bytes | None = b"\0" * 16) -> StartPlan:
    return StartPlan(
        spec=s,
        rootfs_mount=ROOT,
        capability_mask=mask(DEFAULT_CAPABILITIES),
        last_cap=40,
        seccomp_program=program,
        devices=(DeviceNode("/dev/fuse", "c", 10, 229),),
        cgroup_hierarchies=(),
        stdio=(10, 11, 12),
        error_fd=13,
    )


def run(k: RecordingKernel, p: StartPlan) -> Executed:
    with pytest.raises(Executed) as info:
        run_init(p, k)
    return info.value


def first(calls: list[tuple[Any, ...]], name: str, *args: Any) -> int:
    for i, call in enumerate(calls):
        if call[0] == name and call[1 : 1 + len(args)] == args:
            return i
    raise AssertionError(f"no call {name}{args} in {calls}")


def mount_index(calls: list[tuple[Any, ...]], target: str) -> int:
    for i, call in enumerate(calls):
        if call[0] == "mount" and call[2] == target:
            return i
    raise AssertionError(f"nothing mounted at {target}")


def test_start_sequence_runs_in_the_documented_order() -> None:
    k = kernel()
    executed = run(k, plan(spec()))
    c = k.calls
    milestones = [
        first(c, "dup2", 10, 0),
        first(c, "setsid"),
        first(c, "unshare", CLONE_NEWCGROUP),
        mount_index(c, "/"),  # propagation: rslave
        mount_index(c, ROOT),  # overlay rootfs
        mount_index(c, ROOT + "/proc"),
        mount_index(c, ROOT + "/dev"),
        first(c, "mknod", ROOT + "/dev/null"),
        first(c, "symlink", "/proc/self/fd", ROOT + "/dev/fd"),
        mount_index(c, ROOT + "/dev/pts"),
        mount_index(c, ROOT + "/dev/shm"),
        mount_index(c, ROOT + "/dev/mqueue"),
        mount_index(c, ROOT + "/sys"),
        mount_index(c, ROOT + "/tmp"),
        mount_index(c, ROOT + "/data"),
        mount_index(c, ROOT + "/data/sub"),
        mount_index(c, ROOT + "/etc/hosts"),
        first(c, "pivot_root", ".", "."),
        first(c, "umount", "."),
        first(c, "sethostname", "web"),
        first(c, "write_text", "/proc/sys/net/ipv4/ip_forward"),
        mount_index(c, "/sys/firmware"),  # masked
        mount_index(c, "/proc/sys"),  # read-only
        first(c, "setrlimit"),
        first(c, "write_text", "/proc/self/oom_score_adj"),
        first(c, "drop_bounding_capabilities"),
        first(c, "load_seccomp_filter"),
        first(c, "set_groups"),
        first(c, "set_gid", 1000),
        first(c, "set_uid", 1000),
        first(c, "set_capabilities"),
        first(c, "chdir", "/app"),
        first(c, "close_fds_except"),
        first(c, "execve"),
    ]
    assert milestones == sorted(milestones)
    assert executed.path == "/bin/sh"
    assert executed.args == ("sh", "-c", "true")
    assert executed.env["A"] == "1" and executed.env["HOME"] == "/home/tester"
    assert executed.env["PATH"].startswith("/usr/local/sbin")


def test_overlay_options_and_device_nodes() -> None:
    k = kernel()
    run(k, plan(spec()))
    overlay = k.calls[mount_index(k.calls, ROOT)]
    assert overlay[1:5] == ("overlay", ROOT, "overlay", 0)
    assert overlay[5] == "lowerdir=/img/l2:/img/l1,upperdir=/c/upper,workdir=/c/work"
    nodes = [c[1] for c in k.calls if c[0] == "mknod"]
    assert nodes == [ROOT + f"/dev/{n}" for n in ("null", "zero", "full", "random", "urandom", "tty", "fuse")]


def test_read_only_bind_is_remounted_read_only_and_keeps_its_propagation() -> None:
    k = kernel()
    run(k, plan(spec()))
    target = ROOT + "/data/sub"
    on_target = [c for c in k.calls if c[0] == "mount" and c[2] == target]
    assert on_target[0][1] == "/host/data" and on_target[0][4] & MS_BIND
    assert on_target[1][4] & (MS_BIND | MS_REMOUNT | MS_RDONLY) == MS_BIND | MS_REMOUNT | MS_RDONLY
    assert len(on_target) == 3  # bind, read-only remount, propagation


def test_sysctls_are_written_before_proc_sys_turns_read_only() -> None:
    k = kernel()
    run(k, plan(spec()))
    assert first(k.calls, "write_text", "/proc/sys/net/ipv4/ip_forward") < mount_index(k.calls, "/proc/sys")


def test_masked_directory_gets_a_read_only_tmpfs_and_a_file_gets_dev_null() -> None:
    k = kernel()
    run(k, plan(spec()))
    firmware = k.calls[mount_index(k.calls, "/sys/firmware")]
    kcore = k.calls[mount_index(k.calls, "/proc/kcore")]
    assert firmware[3] == "tmpfs" and firmware[4] & MS_RDONLY
    assert kcore[1] == "/dev/null" and kcore[4] & MS_BIND
    assert all(c[2] != "/proc/keys" for c in k.calls if c[0] == "mount"), "missing paths are skipped"


def test_init_is_bound_in_and_wraps_the_command() -> None:
    k = kernel()
    k.executables.add("/dev/init")
    executed = run(k, plan(spec(init=Init("/usr/bin/tini-static", "/dev/init"))))
    bind = k.calls[mount_index(k.calls, ROOT + "/dev/init")]
    assert bind[1] == "/usr/bin/tini-static"
    assert executed.args == ("/dev/init", "--", "sh", "-c", "true")


def test_read_only_root_is_remounted_after_pivot() -> None:
    k = kernel()
    run(k, plan(spec(rootfs=DirectoryRootfs("/img/flat", read_only=True))))
    assert k.calls[mount_index(k.calls, ROOT)][1] == "/img/flat"
    remount = first(k.calls, "mount", None, "/")
    later = [i for i, c in enumerate(k.calls) if c[0] == "mount" and c[2] == "/" and c[4] & MS_RDONLY]
    assert later and later[0] > first(k.calls, "pivot_root") > remount


def test_host_network_binds_sys_instead_of_mounting_sysfs() -> None:
    k = kernel()
    run(k, plan(spec(namespaces=Namespaces(net=Namespace(NamespaceMode.HOST)), sysctls=())))
    sys_mount = k.calls[mount_index(k.calls, ROOT + "/sys")]
    assert sys_mount[1] == "/sys" and sys_mount[4] & MS_BIND


def test_no_seccomp_when_unconfined_and_no_new_privs_when_asked() -> None:
    k = kernel()
    run(k, plan(spec(no_new_privileges=True), program=None))
    assert "load_seccomp_filter" not in k.names()
    assert first(k.calls, "set_no_new_privileges") < first(k.calls, "set_uid")


def test_a_failing_mount_names_its_step_and_errno() -> None:
    k = kernel()
    k.fail_on["mount"] = OSError(errno.EINVAL, "Invalid argument", ROOT + "/proc")
    k.fail_path = ROOT + "/proc"
    with pytest.raises(StepError) as info:
        run_init(plan(spec()), k)
    assert info.value.step == "mount /proc"
    assert info.value.errno == errno.EINVAL
    assert "execve" not in k.names()


def test_missing_bind_source_is_reported_unless_it_may_be_created() -> None:
    k = kernel()
    missing = spec(mounts=(BindMount("/host/nope", "/x"),))
    with pytest.raises(StepError, match="bind source path does not exist: /host/nope"):
        run_init(plan(missing), k)
    k = kernel()
    run(k, plan(spec(mounts=(BindMount("/host/nope", "/x", create_host_path=True),))))
    assert ("makedirs", "/host/nope", 0o755) in k.calls


def test_unknown_user_and_missing_executable_fail_with_clear_messages() -> None:
    k = kernel()
    bad_user = spec(process=ProcessSpec(args=("sh",), user=User("ghost")))
    with pytest.raises(StepError, match="unable to find user ghost"):
        run_init(plan(bad_user), k)
    k = kernel()
    no_binary = spec(process=ProcessSpec(args=("nginx",)))
    with pytest.raises(StepError, match="nginx: executable file not found in \\$PATH"):
        run_init(plan(no_binary), k)


def test_exec_sequence_locks_down_then_execs() -> None:
    k = kernel()
    exec_plan = ExecPlan(
        args=("env",),
        env={"PATH": "/usr/bin"},
        cwd="/",
        user=User("1000:2000"),
        capability_mask=0,
        last_cap=40,
        no_new_privileges=False,
        seccomp_program=b"\0" * 8,
        stdio=(5, 6, 7),
        error_fd=8,
    )
    with pytest.raises(Executed) as info:
        run_exec(exec_plan, k)
    assert info.value.path == "/usr/bin/env"
    assert k.names() == [
        "dup2",
        "dup2",
        "dup2",
        "setsid",
        "drop_bounding_capabilities",
        "set_keep_capabilities",
        "load_seccomp_filter",
        "set_groups",
        "set_gid",
        "set_uid",
        "set_keep_capabilities",
        "set_capabilities",
        "set_umask",
        "chdir",
        "close_fds_except",
        "execve",
    ]
    assert ("set_gid", 2000) in k.calls and ("close_fds_except", (8,)) in k.calls


def test_exec_gets_the_containers_ulimits_and_oom_score_before_dropping_privileges() -> None:
    k = kernel()
    exec_plan = ExecPlan(
        args=("/bin/sh",),
        env={},
        cwd="/",
        user=User(),
        capability_mask=0,
        last_cap=40,
        no_new_privileges=False,
        seccomp_program=None,
        stdio=(0, 1, 2),
        error_fd=8,
        rlimits=(Rlimit("nofile", 64, 128),),
        oom_score_adj=300,
    )
    with pytest.raises(Executed):
        run_exec(exec_plan, k)
    assert first(k.calls, "setrlimit") < first(k.calls, "drop_bounding_capabilities")
    assert first(k.calls, "write_text", "/proc/self/oom_score_adj", "300") < first(k.calls, "set_uid")


def test_secure_join_keeps_symlinks_inside_the_root() -> None:
    links = {"/r/etc/evil": "/../../host", "/r/a": "b/c", "/r/loop": "loop"}
    assert secure_join("/r", "/etc/evil/x", links.get) == "/r/host/x"
    assert secure_join("/r", "../../../etc", links.get) == "/r/etc"
    assert secure_join("/r", "/a/d", links.get) == "/r/b/c/d"
    assert secure_join("/r", "/", links.get) == "/r"
    with pytest.raises(OSError) as info:
        secure_join("/r", "/loop", links.get)
    assert info.value.errno == errno.ELOOP


def test_tty_opens_a_console_in_the_containers_devpts_and_sends_the_master() -> None:
    k = kernel()
    base = plan(spec())
    run(k, StartPlan(**{**base.__dict__, "console_fd": 42}))
    c = k.calls
    assert mount_index(c, ROOT + "/dev/pts") < first(c, "open_pty", ROOT + "/dev/pts/ptmx")
    assert k.calls[mount_index(c, ROOT + "/dev/console")][1] == ROOT + "/dev/pts/0"
    assert first(c, "send_fd", 42, 100) < first(c, "dup2", 101, 0) < first(c, "set_controlling_terminal", 0)
    assert first(c, "set_controlling_terminal", 0) < first(c, "pivot_root")
    assert not [call for call in c if call[0] == "set_window_size"]  # no size asked: none set
    # with the caller's size, the terminal has it before the master is handed out
    k = kernel()
    sized = replace(base.spec, process=replace(base.spec.process, console_size=(33, 101)))
    run(k, StartPlan(**{**base.__dict__, "spec": sized, "console_fd": 42}))
    c = k.calls
    assert first(c, "open_pty") < first(c, "set_window_size", 100, 33, 101) < first(c, "send_fd", 42, 100)


def test_without_a_hostname_the_container_is_named_after_its_id() -> None:
    k = kernel()
    run(k, plan(spec(id="0123456789abcdef", hostname=None)))
    assert ("sethostname", "0123456789ab") in k.calls


def test_cgroup_filesystems_are_mounted_read_only_per_hierarchy_or_whole_on_v2() -> None:
    from orchestrator.runtime.process.sequence import CgroupHierarchy

    base = plan(spec())
    k = kernel()
    v1 = (CgroupHierarchy("memory", "cgroup", "memory"), CgroupHierarchy("unified", "cgroup2", ""))
    run(k, StartPlan(**{**base.__dict__, "cgroup_hierarchies": v1}))
    memory = k.calls[mount_index(k.calls, ROOT + "/sys/fs/cgroup/memory")]
    assert memory[3:] == ("cgroup", MS_RDONLY | 0x2 | 0x4 | 0x8, "memory")
    assert k.calls[mount_index(k.calls, ROOT + "/sys/fs/cgroup")][3] == "tmpfs"
    k = kernel()
    run(k, StartPlan(**{**base.__dict__, "cgroup_hierarchies": (CgroupHierarchy("", "cgroup2", ""),)}))
    top = [c for c in k.calls if c[0] == "mount" and c[2] == ROOT + "/sys/fs/cgroup"]
    assert [c[3] for c in top] == ["cgroup2"]


def test_exec_with_a_tty_opens_a_terminal_in_the_containers_devpts() -> None:
    k = kernel()
    exec_plan = ExecPlan(
        args=("/bin/sh",),
        env={},
        cwd="/",
        user=User(),
        capability_mask=0,
        last_cap=40,
        no_new_privileges=False,
        seccomp_program=None,
        stdio=(5, 6, 7),
        error_fd=8,
        console_fd=9,
    )
    with pytest.raises(Executed):
        run_exec(exec_plan, k)
    c = k.calls
    assert first(c, "setsid") < first(c, "open_pty", "/dev/pts/ptmx") < first(c, "send_fd", 9, 100)
    assert first(c, "dup2", 101, 0) < first(c, "set_controlling_terminal", 0) < first(c, "set_uid")
    k = kernel()
    with pytest.raises(Executed):
        run_exec(replace(exec_plan, console_size=(40, 120)), k)
    c = k.calls
    assert first(c, "open_pty") < first(c, "set_window_size", 100, 40, 120) < first(c, "send_fd", 9, 100)


def test_privileged_keeps_sys_writable_and_masks_nothing() -> None:
    k = kernel()
    run(k, plan(spec(privileged=True)))
    sysfs = k.calls[mount_index(k.calls, ROOT + "/sys")]
    assert not sysfs[4] & MS_RDONLY
    assert all(c[2] not in ("/sys/firmware", "/proc/kcore", "/proc/sys") for c in k.calls if c[0] == "mount")
