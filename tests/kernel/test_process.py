"""The process runtime on the real kernel: containers from a busybox overlay, with the cgroup
driver's cgroups, the isolation probe, resource limits that bite, exec, stop and failures.

Each test has its own state root (tmp_path), fork server, cgroup prefix (``unique_name``) and
container ids; fixtures delete every container (killing it) and the cgroups, pass or fail, and
check that no process or directory is left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import NotFoundError
from orchestrator.runtime.cgroups import CgroupDriver, CgroupHandle, CgroupLimits, DriverOptions, open_driver
from orchestrator.runtime.process import server as server_module
from orchestrator.runtime.process.runtime import (
    ContainerStartError,
    ContainerState,
    ExecSpec,
    ExitStatus,
    ForkServerRuntime,
    InvalidStateError,
    Stdio,
    process_start_time,
)
from orchestrator.runtime.process.spec import (
    BindMount,
    ContainerSpec,
    Device,
    Init,
    Namespace,
    NamespaceMode,
    Namespaces,
    OverlayRootfs,
    ProcessSpec,
    Rlimit,
    Seccomp,
    SeccompMode,
    TmpfsMount,
    User,
)
from tests.kernel.probe.harness import build_probe, mismatches, parse, probe_args, probe_problem

pytestmark = pytest.mark.kernel
MiB = 1 << 20
PROJECT = "proj"


class Box:
    """One test's runtime, cgroups and containers, torn down completely by ``close``."""

    def __init__(self, root: Path, rootfs: Path, prefix: str) -> None:
        self.root = root
        self.rootfs = rootfs
        self.prefix = prefix
        self.driver: CgroupDriver = open_driver(DriverOptions(prefix=prefix))
        self.handles: dict[str, CgroupHandle] = {}
        self.runtime = ForkServerRuntime(root / "state", root / "cache", oom_check=self.oom_killed)
        self.ids: list[str] = []
        self.leftovers: list[str] = []

    def oom_killed(self, cid: str) -> bool:
        handle = self.handles.get(cid)
        return handle is not None and self.driver.oom_killed(handle)

    def spec(
        self, name: str, args: tuple[str, ...], limits: CgroupLimits | None = CgroupLimits(), **extra: object
    ) -> ContainerSpec:
        cid = f"{self.prefix}-{name}"
        upper, work = self.root / cid / "upper", self.root / cid / "work"
        upper.mkdir(parents=True)
        work.mkdir()
        cgroup_dirs: tuple[str, ...] = ()
        if limits is not None:
            handle = self.driver.create(PROJECT, cid, limits)
            self.handles[cid] = handle
            cgroup_dirs = tuple(str(d) for d in handle.directories)
        fields: dict[str, object] = {
            "id": cid,
            "rootfs": OverlayRootfs((str(self.rootfs),), str(upper), str(work)),
            "process": ProcessSpec(args=args),
            "cgroup_dirs": cgroup_dirs,
            "log_path": str(self.root / f"{cid}.log"),
            "hostname": name,
            **extra,
        }
        return ContainerSpec(**fields)  # type: ignore[arg-type]

    def run(self, spec: ContainerSpec) -> str:
        self.ids.append(spec.id)
        self.runtime.create(spec)
        self.runtime.start(spec.id)
        return spec.id

    def log(self, cid: str) -> str:
        return (self.root / f"{cid}.log").read_text()

    def close(self) -> None:
        try:
            for cid in self.ids:
                try:
                    self.runtime.delete(cid, force=True)
                except Exception:
                    pass
        finally:
            self.runtime.close()
            for cid, handle in self.handles.items():
                try:
                    stragglers = self.driver.pids(handle)
                    if stragglers:
                        self.leftovers.append(f"{cid}: processes {stragglers}")
                    self.driver.remove(handle, kill=True)
                except Exception as exc:
                    self.leftovers.append(f"{cid}: {exc}")
            self.driver.remove_project(PROJECT)
            for hierarchy in self.driver.layout.hierarchies:  # type: ignore[attr-defined]
                if (hierarchy.own_dir / self.prefix).exists():
                    self.leftovers.append(f"cgroup {hierarchy.own_dir / self.prefix}")


@pytest.fixture
def box(tmp_path: Path, busybox_rootfs: Path, unique_name: str) -> Iterator[Box]:
    b = Box(tmp_path, busybox_rootfs, unique_name)
    try:
        yield b
    finally:
        b.close()
    assert b.leftovers == [], f"left behind: {b.leftovers}"
    leftovers = sorted(p.name for p in (tmp_path / "state").iterdir() if p.name != "seccomp-cache")
    assert leftovers == [], f"container directories left behind: {leftovers}"
    server = b.runtime._server
    if server is not None:
        assert server.poll() is not None, "fork server still running"
    assert not (tmp_path / "state" / "forkserver.sock").exists(), "fork server still listening"


@pytest.fixture(scope="session")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    problem = probe_problem()
    if problem:
        pytest.skip(problem)
    return build_probe(tmp_path_factory.mktemp("probe") / "probe")


def test_a_container_runs_with_its_own_hostname_and_exit_code(box: Box) -> None:
    cid = box.run(box.spec("hello", ("sh", "-c", "hostname; echo out; echo err >&2; exit 3")))
    # One spec file per container and one mount point shared by all: no directory each (every
    # new inode costs, on ext4 without a journal more so the more were freed recently).
    state = sorted(
        p.name for p in (box.root / "state").iterdir() if p.name not in ("seccomp-cache", "forkserver.sock")
    )
    assert state == [".rootfs", f"{cid}.spec"]
    status = box.runtime.wait(cid, timeout=10)
    assert status is not None and status.code == 3 and not status.oom_killed
    assert box.log(cid).split() == ["hello", "out", "err"]
    assert box.runtime.state(cid) is ContainerState.STOPPED
    box.runtime.delete(cid)
    assert not (box.root / "state" / f"{cid}.spec").exists()


def test_containers_and_exec_processes_start_with_no_signal_ignored_or_blocked(
    box: Box, tmp_path: Path
) -> None:
    """The fork server ignores SIGINT, and Python ignores SIGPIPE and SIGXFSZ; ignored and blocked
    signals survive exec, so every child resets them first (runc's processes start the same way)."""
    show = ("grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status")
    cid = box.run(box.spec("signals", show))
    assert box.runtime.wait(cid, timeout=10) is not None
    clean = ["SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000"]
    assert box.log(cid).split() == clean
    running = box.run(box.spec("signals-exec", ("sleep", "30")))
    out_path = tmp_path / "exec.out"
    with open(out_path, "w") as out:
        handle = box.runtime.exec(running, ExecSpec(show), Stdio(stdout=out.fileno()))
    assert box.runtime.wait_exec(handle, timeout=10) is not None
    assert out_path.read_text().split() == clean


def _run_probe(box: Box, probe: Path, tmp_path: Path, name: str, **extra: Any) -> dict[str, str]:
    marker = tmp_path / f"host-marker-{name}"
    marker.touch()
    spec = box.spec(
        name,
        ("/probe", *probe_args(marker)),
        mounts=(BindMount(str(probe), "/probe", read_only=True),),
        **extra,
    )
    cid = box.run(spec)
    status = box.runtime.wait(cid, timeout=20)
    output = box.log(cid)
    assert status is not None and status.code == 0, output
    return parse(output)


def test_isolation_probe_sees_dockers_defaults(box: Box, probe: Path, tmp_path: Path) -> None:
    values = _run_probe(box, probe, tmp_path, "probe")
    assert values["pid"] == "1"
    assert mismatches(values) == {}


def test_isolation_probe_under_tini_as_child_of_pid_1(box: Box, probe: Path, tmp_path: Path) -> None:
    values = _run_probe(box, probe, tmp_path, "probeinit", init=Init())
    assert values["pid"] == "2"
    assert mismatches(values) == {}


def test_the_probe_refuses_to_run_on_the_host(probe: Path, tmp_path: Path) -> None:
    result = subprocess.run([str(probe), *probe_args(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "refused" in result.stderr and result.stdout == ""


def test_memory_limit_oom_kills_the_hog_and_reports_it(box: Box) -> None:
    limits = CgroupLimits(memory=32 * MiB, memory_swap=32 * MiB)
    cid = box.run(box.spec("hog", ("dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"), limits))
    status = box.runtime.wait(cid, timeout=20)
    assert status is not None
    assert (status.code, status.signal, status.oom_killed) == (137, signal.SIGKILL, True)


def test_pids_limit_stops_a_fork_bomb(box: Box) -> None:
    limits = CgroupLimits(pids_limit=16)
    script = "i=0; while [ $i -lt 64 ]; do sleep 30 & i=$((i+1)); done; echo spawned; sleep 30"
    cid = box.run(box.spec("bomb", ("sh", "-c", script), limits))
    deadline = time.monotonic() + 10
    while "can't fork" not in box.log(cid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "can't fork" in box.log(cid) and "spawned" not in box.log(cid)
    assert len(box.driver.pids(box.handles[cid])) <= 16
    # busybox sh gives up on the failed fork (exit 2); a SIGKILL ends it if it had not yet.
    assert box.runtime.stop(cid, grace_seconds=0.2).code in (2, 137)


def test_half_a_cpu_holds_a_busy_loop_near_fifty_percent(box: Box) -> None:
    cid = box.run(box.spec("spin", ("sh", "-c", "while :; do :; done"), CgroupLimits(cpus=0.5)))
    handle = box.handles[cid]
    time.sleep(0.3)
    first, t0 = box.driver.stats(handle).cpu_usage_ns, time.monotonic()
    time.sleep(1.5)
    second, t1 = box.driver.stats(handle).cpu_usage_ns, time.monotonic()
    assert first is not None and second is not None
    share = (second - first) / 1e9 / (t1 - t0)
    throttled = box.driver.stats(handle).cpu_throttled_periods or 0
    assert share < 0.6, f"busy loop used {share:.2f} of a core"
    # On a quiet machine the loop reaches its half core and the quota throttles it; when other
    # work keeps both cores busy it may get less and never hit the quota (a ceiling, not a share).
    busy = os.getloadavg()[0] > (os.cpu_count() or 1)
    assert busy or (share > 0.35 and throttled > 0), (
        f"idle machine: {share:.2f} of a core, {throttled} throttled"
    )
    box.runtime.stop(cid, grace_seconds=0.1)


def test_exec_joins_the_containers_namespaces_cgroups_and_user(box: Box, tmp_path: Path) -> None:
    spec = box.spec(
        "exec",
        ("sleep", "30"),
        process=ProcessSpec(args=("sleep", "30"), user=User("tester")),
        rlimits=(Rlimit("nofile", 512, 512),),
    )
    cid = box.run(spec)
    out_path = tmp_path / "exec.out"
    with open(out_path, "w") as out:
        handle = box.runtime.exec(
            cid, ExecSpec(("sh", "-c", "id -u; hostname; sleep 0.3; exit 7")), Stdio(stdout=out.fileno())
        )
    init_pid = box.runtime.pid(cid)
    for kind in ("net", "pid", "mnt", "uts", "ipc", "cgroup"):
        assert os.readlink(f"/proc/{handle.pid}/ns/{kind}") == os.readlink(f"/proc/{init_pid}/ns/{kind}"), (
            kind
        )
    assert handle.pid in box.driver.pids(box.handles[cid])
    status = box.runtime.wait_exec(handle, timeout=10)
    assert status is not None and status.code == 7
    assert out_path.read_text().split() == ["1000", "exec"]
    with open(f"/proc/{init_pid}/status") as f:
        assert "CapEff:\t0000000000000000" in f.read()  # a non-root user keeps no effective caps

    override = ExecSpec(
        ("sh", "-c", "id -u; pwd; echo $X; ulimit -n; umask"),
        env=(("X", "1"),),
        cwd="/tmp",
        user=User("nobody"),
    )
    with open(out_path, "w") as out:
        handle = box.runtime.exec(cid, override, Stdio(stdout=out.fileno()))
    assert box.runtime.wait_exec(handle, timeout=10) is not None
    assert out_path.read_text().split() == ["65534", "/tmp", "1", "512", "0022"]


def test_start_failures_come_back_as_clear_errors(box: Box) -> None:
    spec = box.spec("broken", ("/no/such/binary",))
    box.ids.append(spec.id)
    box.runtime.create(spec)
    with pytest.raises(ContainerStartError, match="exec: /no/such/binary: no such file or directory") as info:
        box.runtime.start(spec.id)
    assert info.value.step == "exec"
    assert box.runtime.wait(spec.id, timeout=10) is not None
    assert box.runtime.state(spec.id) is ContainerState.STOPPED
    with pytest.raises(InvalidStateError, match="cannot go from stopped to running"):
        box.runtime.start(spec.id)


def test_stop_escalates_to_sigkill_and_init_forwards_the_stop_signal(box: Box) -> None:
    # A shell as PID 1 has no SIGTERM handler, so the kernel drops the signal: SIGKILL after grace.
    bare = box.run(box.spec("bare", ("sh", "-c", "sleep 30 & wait")))
    started = time.monotonic()
    assert box.runtime.stop(bare, grace_seconds=0.3).code == 137
    assert time.monotonic() - started >= 0.3
    # Under tini, SIGTERM reaches the command, which dies of it.
    wrapped = box.run(box.spec("tini", ("sleep", "30"), init=Init()))
    time.sleep(0.1)
    assert box.runtime.stop(wrapped, grace_seconds=5).code == 143


def test_mounts_read_only_root_and_tmpfs(box: Box, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("from host")
    spec = box.spec(
        "mounts",
        (
            "sh",
            "-c",
            "cat /data/in.txt; echo x > /data/out.txt; touch /rootfile || echo ro-root; df -k /scratch | tail -1",
        ),
        mounts=(BindMount(str(shared), "/data"), TmpfsMount("/scratch", size_bytes=4 * MiB)),
        rootfs=OverlayRootfs((str(box.rootfs),), str(tmp_path / "u"), str(tmp_path / "w"), read_only=True),
    )
    (tmp_path / "u").mkdir()
    (tmp_path / "w").mkdir()
    cid = box.run(spec)
    assert box.runtime.wait(cid, timeout=10) is not None
    log = box.log(cid)
    assert "from host" in log and "ro-root" in log and " 4096 " in log
    assert (shared / "out.txt").read_text() == "x\n"


def test_tty_gives_the_container_a_terminal_and_the_caller_its_master(box: Box) -> None:
    spec = box.spec("tty", ("sh", "-c", "tty; stty -echo; read line; echo got $line"))
    spec = ContainerSpec(**{**spec.__dict__, "process": ProcessSpec(args=spec.process.args, tty=True)})
    cid = box.run(spec)
    master = box.runtime.console(cid)
    assert master is not None
    os.write(master, b"hello\n")
    output = b""
    deadline = time.monotonic() + 10
    while b"got hello" not in output and time.monotonic() < deadline:
        try:
            output += os.read(master, 4096)
        except OSError:  # EIO: the terminal's last slave closed
            break
    status = box.runtime.wait(cid, timeout=10)
    assert status is not None and status.code == 0
    assert b"/dev/pts/0" in output and b"got hello" in output


def test_containers_can_join_each_others_namespaces_or_use_the_hosts(box: Box) -> None:
    first = box.run(box.spec("first", ("sleep", "30")))
    pid = box.runtime.pid(first)
    joined = box.spec(
        "joined",
        ("sh", "-c", "ls /proc | grep -c '^[0-9]'; hostname"),
        namespaces=Namespaces(
            net=Namespace(NamespaceMode.JOIN, f"/proc/{pid}/ns/net"),
            pid=Namespace(NamespaceMode.JOIN, f"/proc/{pid}/ns/pid"),
            ipc=Namespace(NamespaceMode.JOIN, f"/proc/{pid}/ns/ipc"),
        ),
    )
    second = box.run(joined)
    second_pid = box.runtime.pid(second)
    for kind in ("net", "pid", "ipc"):
        assert os.readlink(f"/proc/{second_pid}/ns/{kind}") == os.readlink(f"/proc/{pid}/ns/{kind}")
    assert os.readlink(f"/proc/{second_pid}/ns/uts") != os.readlink(f"/proc/{pid}/ns/uts")
    assert box.runtime.wait(second, timeout=10) is not None
    processes, hostname = box.log(second).split()
    assert int(processes) >= 2 and hostname == "joined"  # sees the first container's sleep too

    host = box.spec(
        "hostnet",
        ("ls", "/sys/class/net"),
        namespaces=Namespaces(net=Namespace(NamespaceMode.HOST)),
    )
    third = box.run(host)
    assert box.runtime.wait(third, timeout=10) is not None
    # Other tests add and remove their own (orc*, veth*) links meanwhile; the host's own stay.
    stable = {n for n in os.listdir("/sys/class/net") if not n.startswith(("orc", "veth"))}
    assert stable and stable <= set(box.log(third).split())
    box.runtime.stop(first, grace_seconds=0)


def _server_children(box: Box) -> set[int]:
    assert box.runtime._server is not None
    server = box.runtime._server.pid
    return {int(p) for p in Path(f"/proc/{server}/task/{server}/children").read_text().split()}


def _ready_blanks(box: Box) -> set[int]:
    """Children of the fork server that already unshared their network namespace."""
    ours = os.readlink("/proc/self/ns/net")
    ready = set()
    for pid in _server_children(box):
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != ours:
                ready.add(pid)
        except OSError:
            continue
    return ready


def test_idle_server_keeps_blank_inits_ready_and_create_hands_one_over(box: Box) -> None:
    # A host mount made meanwhile (other work on a developer machine) replaces the blanks: retry.
    for attempt in range(3):
        deadline = time.monotonic() + 5
        blanks = _ready_blanks(box)
        while len(blanks) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
            blanks = _ready_blanks(box)
        assert len(blanks) == 2
        for pid in blanks:  # forked into their own pid namespace
            assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
        cid = box.run(box.spec(f"pooled{attempt}", ("sh", "-c", "echo $$")))
        assert box.runtime.wait(cid, timeout=10) is not None
        assert box.log(cid).strip() == "1"
        if box.runtime.pid(cid) in blanks:
            return
    pytest.fail("create never used a blank init")


def test_capabilities_privileges_limits_sysctls_and_devices_are_applied(box: Box, tmp_path: Path) -> None:
    script = (
        "grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status; ulimit -n; cat /proc/sys/net/ipv4/ip_forward; "
        "cat /proc/self/oom_score_adj; cat /proc/sys/kernel/domainname; echo x > /dev/mynull && echo null-ok; "
        "mkdir /tmp/blocked 2>/dev/null || echo mkdir-denied"
    )
    profile = tmp_path / "profile.json"
    profile.write_text(
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": ['
        '{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}'
    )
    spec = box.spec(
        "knobs",
        ("sh", "-c", script),
        cap_drop=("ALL",),
        cap_add=("NET_BIND_SERVICE",),
        no_new_privileges=True,
        rlimits=(Rlimit("nofile", 256, 256),),
        sysctls=(("net.ipv4.ip_forward", "1"),),
        oom_score_adj=500,
        domainname="example.test",
        devices=(Device("/dev/null", "/dev/mynull"),),
        seccomp=Seccomp(SeccompMode.CUSTOM, str(profile)),
    )
    cid = box.run(spec)
    assert box.runtime.wait(cid, timeout=10) is not None
    lines = box.log(cid).split("\n")
    assert "CapEff:\t0000000000000400" in lines
    assert "NoNewPrivs:\t1" in lines and "Seccomp:\t2" in lines
    assert lines[lines.index("Seccomp:\t2") + 1 :][:6] == [
        "256",
        "1",
        "500",
        "example.test",
        "null-ok",
        "mkdir-denied",
    ]


def test_privileged_and_unconfined_drop_the_filters(box: Box) -> None:
    show = ("grep", "-E", "CapEff|Seccomp:", "/proc/self/status")
    privileged_script = (
        "grep -E 'CapEff|Seccomp:' /proc/self/status; grep ' /sys sysfs ' /proc/mounts; "
        "echo renamed > /proc/sys/kernel/hostname && hostname; ls /dev | grep -c ."
    )
    privileged = box.run(box.spec("priv", ("sh", "-c", privileged_script), privileged=True))
    unconfined = box.run(box.spec("unconf", show, seccomp=Seccomp(SeccompMode.UNCONFINED)))
    for cid in (privileged, unconfined):
        assert box.runtime.wait(cid, timeout=10) is not None
    # Everything the kernel knows that this (possibly sandboxed) host still has in its bounding set.
    bounding = next(
        line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("CapBnd")
    )
    assert f"CapEff:\t{bounding.split()[1]}" in box.log(privileged)
    assert "Seccomp:\t0" in box.log(privileged)
    lines = box.log(privileged).splitlines()
    assert lines[2].startswith("sysfs /sys sysfs rw,")  # writable /sys, unmasked /proc/sys
    assert lines[3] == "renamed"
    host_nodes = [p for p in Path("/dev").iterdir() if p.is_char_device() or p.is_block_device()]
    assert int(lines[4]) >= len(host_nodes)  # the host's device nodes, plus pts, shm, symlinks
    assert "CapEff:\t00000000a80425fb" in box.log(unconfined) and "Seccomp:\t0" in box.log(unconfined)


def _wait_for_blanks(box: Box) -> set[int]:
    deadline = time.monotonic() + 5
    while len(_server_children(box)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    return _server_children(box)


def test_a_host_mount_made_after_the_blanks_were_forked_is_seen_by_the_container(
    box: Box, tmp_path: Path
) -> None:
    before = _wait_for_blanks(box)
    assert len(before) == 2
    late = tmp_path / "late"
    late.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "orctlate", str(late)], check=True)
    try:
        (late / "fresh.txt").write_text("made after the blanks")
        deadline = time.monotonic() + 5
        after = _server_children(box)
        while not (before.isdisjoint(after) and len(after) == 2) and time.monotonic() < deadline:
            time.sleep(0.02)
            after = _server_children(box)
        assert before.isdisjoint(after), "blanks holding the old mount table were not replaced"
        cid = box.run(
            box.spec(
                "late", ("cat", "/late/fresh.txt"), mounts=(BindMount(str(late), "/late", read_only=True),)
            )
        )
        assert box.runtime.wait(cid, timeout=10) is not None
        assert box.log(cid) == "made after the blanks"
    finally:
        subprocess.run(["umount", str(late)], check=True)


def test_create_and_exec_failures_come_back_as_clear_errors(box: Box, tmp_path: Path) -> None:
    spec = box.spec("nocgroup", ("true",), limits=None, cgroup_dirs=(str(tmp_path / "no-such-cgroup"),))
    with pytest.raises(ContainerStartError, match="join cgroups: No such file or directory") as info:
        box.runtime.create(spec)
    assert info.value.step == "join cgroups"
    with pytest.raises(Exception, match="no container"):
        box.runtime.state(spec.id)
    box.runtime.create(box.spec("nocgroup2", ("true",), limits=None))  # the server is fine
    box.ids.append(f"{box.prefix}-nocgroup2")

    cid = box.run(box.spec("execfail", ("sleep", "30")))
    with pytest.raises(ContainerStartError, match="exec: /nope: no such file or directory"):
        box.runtime.exec(cid, ExecSpec(("/nope",)))
    handle = box.runtime.exec(cid, ExecSpec(("true",)))
    status = box.runtime.wait_exec(handle, timeout=10)
    assert status is not None and status.code == 0


def test_a_new_runtime_adopts_a_running_container_and_stops_it(box: Box) -> None:
    spec = box.spec("orphan", ("sleep", "30"))
    cid = box.run(spec)
    pid = box.runtime.pid(cid)
    started = process_start_time(pid)
    old = box.runtime
    old.close()  # the fork server goes; the container keeps running, re-parented
    assert os.path.exists(f"/proc/{pid}") and process_start_time(pid) == started
    box.runtime = ForkServerRuntime(box.root / "state", box.root / "cache", oom_check=box.oom_killed)
    with pytest.raises(NotFoundError):
        box.runtime.adopt(spec, pid, start_time=(started or 0) + 1)  # a reused pid is refused
    box.runtime.adopt(spec, pid, start_time=started)
    assert box.runtime.state(cid) is ContainerState.RUNNING
    out = box.root / "adopted.out"
    with open(out, "w") as f:
        handle = box.runtime.exec(cid, ExecSpec(("hostname",)), Stdio(stdout=f.fileno()))
    assert box.runtime.wait_exec(handle, timeout=10) == ExitStatus(0, None)
    assert out.read_text().strip() == "orphan"
    status = box.runtime.stop(cid, grace_seconds=0.2)  # sleep as PID 1 ignores SIGTERM: SIGKILL
    # Not our child, so its wait status is unknown; but we sent the SIGKILL that ended it.
    assert (status.code, status.signal, status.known) == (137, signal.SIGKILL, False)
    try:  # dead: gone, or a zombie until its new parent (the host's init) reaps it
        assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        pass
    box.runtime.delete(cid)
    # An exited init nobody reaped (this machine's init never does) is not adopted again: its
    # pidfd would report the exit at once, and the container would count as running.
    with pytest.raises(NotFoundError):
        box.runtime.adopt(spec, pid, start_time=started)
    assert cid not in box.runtime.containers()


def test_close_with_hand_over_leaves_the_containers_to_the_next_runtime(box: Box) -> None:
    """A supervisor leaving on SIGTERM hands over like a crashed one: the server stays the
    containers' parent, so the next runtime takes them over and reads their real exit codes."""
    cid = box.run(box.spec("handover", ("sh", "-c", "sleep 0.5; exit 7")))
    server = box.runtime._server
    assert server is not None
    box.runtime.close(hand_over=True)
    assert Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z", (
        "the fork server left with the runtime"
    )
    box.runtime = ForkServerRuntime(box.root / "state", box.root / "cache", oom_check=box.oom_killed)
    # running still, or already ended with its status kept for us (a slow machine): either way ours
    assert list(box.runtime.containers()) == [cid]
    status = box.runtime.wait(cid, timeout=10)
    assert status is not None and (status.code, status.known) == (7, True)
    box.runtime.delete(cid)
    box.runtime.close()  # nothing runs any more: this one stops the server
    assert os.waitpid(server.pid, 0)[0] == server.pid


def test_exec_with_a_tty_gets_a_terminal_of_the_container(box: Box) -> None:
    cid = box.run(box.spec("exectty", ("sleep", "30")))
    handle = box.runtime.exec(cid, ExecSpec(("sh", "-c", "tty; read line; echo got $line"), tty=True))
    assert handle.console is not None
    try:
        os.write(handle.console, b"hi\n")
        output = b""
        deadline = time.monotonic() + 10
        while b"got hi" not in output and time.monotonic() < deadline:
            try:
                output += os.read(handle.console, 4096)
            except OSError:
                break
        status = box.runtime.wait_exec(handle, timeout=10)  # closing the master first would hang up
    finally:
        os.close(handle.console)
    assert status is not None and status.code == 0
    assert b"/dev/pts/" in output and b"got hi" in output


def test_a_runtime_that_died_is_replaced_without_losing_containers_or_exit_codes(box: Box) -> None:
    survivor = box.run(box.spec("survivor", ("sleep", "30")))
    quick = box.run(box.spec("quick", ("sh", "-c", "sleep 0.3; exit 7")))
    old = box.runtime
    old._sock.shutdown(socket.SHUT_RDWR)  # the supervisor "dies": no shutdown request is sent
    old._sock.close()
    old._reader.join(timeout=5)
    time.sleep(0.6)  # "quick" exits while no runtime listens; the server keeps its status
    assert old._server is not None and old._server.poll() is None, "the fork server must outlive it"
    box.runtime = ForkServerRuntime(box.root / "state", box.root / "cache", oom_check=box.oom_killed)
    try:
        assert box.runtime._server is None  # connected to the same server
        assert box.runtime.containers() == {survivor: ContainerState.RUNNING, quick: ContainerState.STOPPED}
        assert box.runtime.wait(quick, timeout=0) == ExitStatus(7, None)
        handle = box.runtime.exec(survivor, ExecSpec(("true",)))
        assert box.runtime.wait_exec(handle, timeout=10) == ExitStatus(0, None)
        assert box.runtime.stop(survivor, grace_seconds=0.2) == ExitStatus(137, 9)  # known: still its child
    finally:
        old._trash.close()
    box.runtime.delete(quick)
    box.runtime.delete(survivor)
    box.ids = []
    box.runtime.close()
    old._server.wait(timeout=10)  # it exits on the new runtime's shutdown; reap it here
    box.runtime = ForkServerRuntime(box.root / "state", box.root / "cache")  # for the fixture


def test_a_second_runtime_on_the_same_directory_gets_its_own_server(box: Box) -> None:
    second = ForkServerRuntime(box.root / "state", box.root / "cache")
    try:
        assert second._server is not None and second._server.pid != box.runtime._server.pid  # type: ignore[union-attr]
        cid = box.run(box.spec("first-runtime", ("true",)))
        assert box.runtime.wait(cid, timeout=10) == ExitStatus(0, None)
    finally:
        second.close()


def test_a_fork_server_started_early_is_the_one_the_runtime_takes_over(
    tmp_path: Path, busybox_rootfs: Path
) -> None:
    """``server.start_early`` (a supervisor's first step) starts the server; the runtime made
    later for the same directory and settings uses it and stops it on close. With a socket left
    in the directory, or other settings, the runtime starts (or reconnects to) its own."""
    state, cache = tmp_path / "state", tmp_path / "cache"
    assert server_module.start_early(state, cache, blank_inits=0)
    assert not server_module.start_early(state, cache, blank_inits=0)  # one per directory
    early_pid = server_module._early[str(state)][2].pid
    runtime = ForkServerRuntime(state, cache, blank_inits=0)
    try:
        assert runtime._server is not None and runtime._server.pid == early_pid
        assert runtime.containers() == {}
    finally:
        runtime.close()
    assert runtime._server.poll() is not None

    other = tmp_path / "other"
    assert server_module.start_early(other, cache, blank_inits=0)
    early = server_module._early[str(other)][2]
    runtime = ForkServerRuntime(other, cache, blank_inits=1)  # other settings: its own server
    try:
        assert early.poll() is not None  # told to go: its socket closed, it had nothing to serve
        assert runtime._server is not None and runtime._server.pid != early.pid
    finally:
        runtime.close()

    (state / server_module.LISTEN_NAME).touch()  # a server that outlived its supervisor, say
    assert not server_module.start_early(state, cache, blank_inits=0)
    (state / server_module.LISTEN_NAME).unlink()


def test_a_signal_sent_without_waiting_for_the_answer_arrives(box: Box) -> None:
    """``kill(wait=False)`` (a stop's first step from the supervisor's event loop) sends the
    signal without a round trip; a container that is no longer running is refused at once."""
    cid = box.run(box.spec("nowait", ("sh", "-c", "trap 'exit 7' TERM; sleep 100000 & wait")))
    time.sleep(0.2)  # the trap is set
    box.runtime.kill(cid, signal.SIGTERM, wait=False)
    status = box.runtime.wait(cid, timeout=10)
    assert status is not None and status.code == 7
    with pytest.raises(InvalidStateError, match="cannot signal it"):
        box.runtime.kill(cid, signal.SIGTERM, wait=False)
