"""``orc doctor`` without root: every check against a ``FakeHost`` and a fake cgroupfs.

Each test starts from a host where everything passes and breaks one thing, then checks the line
that thing produces (status, what it says, the fix) and the exit code.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator.errors import PermanentError, TemporaryError
from orchestrator.runtime.cgroups.fake import FakeCgroupFs
from orchestrator.runtime.doctor import (
    CheckResult,
    DiskUsage,
    DoctorOptions,
    RegistryPing,
    SandboxReport,
    Status,
    checks,
    diagnose,
    exit_code,
)
from orchestrator.runtime.doctor.fake import FULL_CAPS, FakeHost, dynamic_elf, static_elf
from orchestrator.runtime.network import ipam
from orchestrator.runtime.network.fake import RecordingRunner
from orchestrator.runtime.network.firewall import CommandResult

GiB = 1 << 30
MiB = 1 << 20
NAMES = [
    "root",
    "capabilities",
    "namespaces",
    "user namespaces",
    "cgroups",
    "overlayfs",
    "bridge",
    "nftables",
    "ip forwarding",
    "seccomp",
    "subnets",
    "tini",
    "busybox",
    "disk run",
    "disk lib",
    "registry",
]


class Scenario:
    def __init__(self, fs: FakeCgroupFs) -> None:
        self.fs = fs
        self.host = FakeHost.healthy(fs, fs.proc_self_cgroup())
        self.options = DoctorOptions(
            run_root=Path("/run/orc"), lib_root=Path("/var/lib/orc"), cgroup_root=fs.root
        )

    def run(self, **changes: Any) -> dict[str, CheckResult]:
        options = dataclasses.replace(self.options, **changes)
        self.results = diagnose(self.host, options)
        return {r.name: r for r in self.results}


@pytest.fixture
def v1(tmp_path: Path) -> Scenario:
    return Scenario(FakeCgroupFs.v1(tmp_path / "cg", own_paths={"memory": "/process_api/abc"}, hybrid=True))


# --- the whole report ---------------------------------------------------------------------------


def test_healthy_host_passes_every_check_and_exits_zero(v1: Scenario) -> None:
    results = v1.run()
    assert list(results) == NAMES
    not_ok = {name: r for name, r in results.items() if r.status is not Status.OK}
    assert list(not_ok) == ["registry"]
    assert not_ok["registry"].status is Status.SKIP
    assert exit_code(v1.results) == 0
    assert ("sandbox", "None") in v1.host.calls  # /var/lib/orc does not exist: default tmp dir


def test_scratch_dir_goes_under_an_existing_lib_root(v1: Scenario) -> None:
    v1.host.files["/var/lib/orc"] = ""
    v1.run()
    assert ("sandbox", "/var/lib/orc") in v1.host.calls


def test_not_root_fails_and_skips_what_needs_root(v1: Scenario) -> None:
    v1.host.uid = 1000
    results = v1.run()
    assert results["root"].status is Status.FAIL
    assert "sudo" in results["root"].fix
    assert results["capabilities"].status is Status.SKIP
    assert "not probed" in results["cgroups"].summary
    assert (
        results["overlayfs"].status is Status.OK and "not probed (needs root)" in results["overlayfs"].summary
    )
    assert results["bridge"].status is Status.SKIP
    assert results["nftables"].status is Status.SKIP
    assert not any(call[0] in ("sandbox", "run") for call in v1.host.calls)
    assert exit_code(v1.results) == 1


# --- root and capabilities ------------------------------------------------------------------


def test_missing_required_capability_fails() -> None:
    mask = int(FULL_CAPS, 16) & ~(1 << 21)
    result = checks.check_capabilities(f"CapEff:\t{mask:016x}\n", "40\n", euid=0)
    assert result.status is Status.FAIL
    assert "CAP_SYS_ADMIN (namespaces" in result.summary


def test_missing_sys_resource_only_warns() -> None:
    # What this VM's root really has: everything but CAP_SYS_RESOURCE (bit 24).
    result = checks.check_capabilities("CapEff:\t000001fffeffffff\n", "40\n", euid=0)
    assert result.status is Status.WARN
    assert result.summary.startswith("root lacks CAP_SYS_RESOURCE: cap_add and privileged cannot grant it")
    assert "negative oom_score_adj" in result.summary
    assert "CAP_SYS_RESOURCE" in result.fix


def test_capabilities_the_kernel_does_not_know_are_not_missing() -> None:
    # A 5.4 kernel stops at CAP_AUDIT_READ (37): PERFMON, BPF, CHECKPOINT_RESTORE do not exist.
    mask = (1 << 38) - 1
    result = checks.check_capabilities(f"CapEff:\t{mask:016x}\n", "37\n", euid=0)
    assert result.status is Status.OK
    assert result.summary == "all 38 capabilities of this kernel are effective"
    result = checks.check_capabilities(f"CapEff:\t{mask:016x}\n", "40\n", euid=0)
    assert result.status is Status.WARN
    assert "CAP_PERFMON, CAP_BPF, CAP_CHECKPOINT_RESTORE" in result.summary


# --- namespaces ---------------------------------------------------------------------------------


def test_missing_namespace_names_the_kernel_option(v1: Scenario) -> None:
    del v1.host.files["/proc/self/ns/net"]
    result = v1.run()["namespaces"]
    assert result.status is Status.FAIL
    assert "net" in result.summary and "CONFIG_NET_NS" in result.fix
    assert exit_code(v1.results) == 1


def test_disabled_user_namespaces_are_not_a_failure(v1: Scenario) -> None:
    v1.host.files["/proc/sys/user/max_user_namespaces"] = "0\n"
    result = v1.run()["user namespaces"]
    assert result.status is Status.OK
    assert result.fix == "sysctl -w user.max_user_namespaces=15000"


# --- cgroups ------------------------------------------------------------------------------------


def test_cgroups_v1_hybrid_lists_usable_controllers_and_leaves_no_probe(v1: Scenario) -> None:
    result = v1.run()["cgroups"]
    assert result.status is Status.OK
    assert result.summary.startswith("v1 (hybrid, driven as v1)")
    assert "/process_api/abc" in result.summary
    for controller in ("cpu", "cpuacct", "memory", "pids", "freezer", "devices", "blkio", "cpuset"):
        assert controller in result.summary.split(": ", 1)[1]
    probes = [w for w in v1.fs.root.rglob("orc-doctor-*")]
    assert probes == []


def test_cgroups_v1_without_memory_warns_with_mount_command(tmp_path: Path) -> None:
    hierarchies = {"cpu,cpuacct": ("cpu", "cpuacct"), "pids": ("pids",), "freezer": ("freezer",)}
    scenario = Scenario(FakeCgroupFs.v1(tmp_path / "cg", hierarchies=hierarchies))
    result = scenario.run()["cgroups"]
    assert result.status is Status.WARN
    assert "mem_limit" in result.summary and "memory" in result.summary
    assert f"mount -t cgroup -o memory cgroup {tmp_path / 'cg' / 'memory'}" in result.fix
    assert exit_code(scenario.results) == 0


def test_cgroups_v2_missing_controller_says_how_to_delegate(tmp_path: Path) -> None:
    fs = FakeCgroupFs.v2(
        tmp_path / "cg", controllers=("cpu", "pids", "io", "cpuset"), own_path="/user.slice/me"
    )
    result = Scenario(fs).run()["cgroups"]
    assert result.status is Status.WARN
    assert result.summary.startswith("v2")
    assert "+memory" in result.fix and "cgroup.subtree_control" in result.fix


def test_cgroups_v2_full_is_ok(tmp_path: Path) -> None:
    result = Scenario(FakeCgroupFs.v2(tmp_path / "cg", own_path="/orc.scope")).run()["cgroups"]
    assert result.status is Status.OK
    assert "memory" in result.summary


class DenyingFs(FakeCgroupFs):
    """A cgroupfs where creating directories below ``denied`` is refused (no delegation)."""

    denied: tuple[Path, ...] = ()

    def mkdir(self, path: Path) -> None:
        if any(path.parent == d for d in self.denied):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        super().mkdir(path)


def test_cgroups_that_cannot_be_created_fail(tmp_path: Path) -> None:
    fs = FakeCgroupFs.v2(tmp_path / "cg", own_path="/user.slice")
    fs.__class__ = DenyingFs
    fs.denied = (tmp_path / "cg" / "user.slice",)  # type: ignore[attr-defined]
    scenario = Scenario(fs)
    result = scenario.run()["cgroups"]
    assert result.status is Status.FAIL
    assert "Permission denied" in result.summary
    assert exit_code(scenario.results) == 1


def test_one_unusable_v1_hierarchy_warns(tmp_path: Path) -> None:
    fs = FakeCgroupFs.v1(tmp_path / "cg")
    fs.__class__ = DenyingFs
    fs.denied = (tmp_path / "cg" / "freezer",)  # type: ignore[attr-defined]
    result = Scenario(fs).run()["cgroups"]
    assert result.status is Status.WARN
    assert "freezer: mkdir in" in result.summary
    assert "freezer" not in result.summary.split(" usable")[0].split(": ", 1)[1]


class UnreadableFs(FakeCgroupFs):
    def read(self, path: Path) -> str:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))


def test_unreadable_cgroup_files_fail_instead_of_crashing(tmp_path: Path) -> None:
    fs = FakeCgroupFs.v2(tmp_path / "cg", own_path="/user.slice")
    fs.__class__ = UnreadableFs
    result = Scenario(fs).run()["cgroups"]
    assert result.status is Status.FAIL
    assert "Permission denied" in result.summary


def test_nft_that_cannot_run_warns(v1: Scenario) -> None:
    v1.host.programs["iptables"] = "/usr/sbin/iptables"

    def broken(argv: Sequence[str], input: str | None = None) -> CommandResult:
        if list(argv) == ["nft", "list", "tables"]:
            return CommandResult(0, "", "")
        raise PermanentError(f"running {argv[0]}: timed out")

    v1.host.run = broken  # type: ignore[method-assign]
    result = v1.run()["nftables"]
    assert result.status is Status.WARN
    assert "reading the FORWARD chain failed: running iptables: timed out" in result.summary


def test_no_cgroup_filesystem_fails(tmp_path: Path) -> None:
    fs = FakeCgroupFs.v1(tmp_path / "cg")
    scenario = Scenario(fs)
    scenario.host.files["/proc/self/cgroup"] = "0::/\n"
    result = scenario.run(cgroup_root=tmp_path / "empty")["cgroups"]
    assert result.status is Status.FAIL
    assert "mount the cgroup filesystem" in result.fix


# --- overlay, bridge ----------------------------------------------------------------------------


def test_overlay_missing_from_kernel_fails(v1: Scenario) -> None:
    v1.host.files["/proc/filesystems"] = "nodev\tsysfs\n\text4\n"
    result = v1.run()["overlayfs"]
    assert result.status is Status.FAIL
    assert result.fix.startswith("modprobe overlay")


def test_overlay_mount_failure_fails(v1: Scenario) -> None:
    v1.host.sandbox_report = SandboxReport("mount: Invalid argument", None, None, "/var/lib/orc/x")
    result = v1.run()["overlayfs"]
    assert result.status is Status.FAIL
    assert "Invalid argument" in result.summary and "/var/lib/orc/x" in result.summary


def test_bridge_failure_names_modules(v1: Scenario) -> None:
    v1.host.sandbox_report = SandboxReport(
        None, "creating bridge orcdoctor0: Operation not supported", "x", "/t"
    )
    result = v1.run()["bridge"]
    assert result.status is Status.FAIL
    assert "modprobe bridge veth" in result.fix


def test_sandbox_that_cannot_run_is_reported(v1: Scenario) -> None:
    v1.host.sandbox_report = TemporaryError("sandbox probe did not finish in 30s")
    results = v1.run()
    assert results["bridge"].status is Status.WARN
    assert "did not finish" in results["bridge"].summary
    assert results["overlayfs"].status is Status.WARN
    assert "did not finish" in results["overlayfs"].summary
    assert exit_code(v1.results) == 0


# --- nftables, forwarding, seccomp --------------------------------------------------------------

FORWARD = ("nft", "-j", "list", "chain", "ip", "filter", "FORWARD")


def test_missing_nft_warns_with_package(v1: Scenario) -> None:
    del v1.host.programs["nft"]
    result = v1.run()["nftables"]
    assert result.status is Status.WARN
    assert result.fix == "apt-get install nftables"
    assert exit_code(v1.results) == 0


def test_nft_that_cannot_list_warns(v1: Scenario) -> None:
    v1.host.commands[("nft", "list", "tables")] = CommandResult(1, "", "Error: Protocol not supported")
    result = v1.run()["nftables"]
    assert result.status is Status.WARN
    assert "Protocol not supported" in result.summary and "nf_tables" in result.fix


def test_dropping_forward_policy_with_iptables_is_explained(v1: Scenario) -> None:
    v1.host.runner = RecordingRunner(forward_policy="drop", docker_user_chain=True)
    result = v1.run()["nftables"]
    assert result.status is Status.OK
    assert result.summary.endswith("FORWARD policy is drop, orc adds accept rules to iptables DOCKER-USER")


def test_dropping_forward_policy_without_iptables_warns(v1: Scenario) -> None:
    v1.host.commands[FORWARD] = CommandResult(
        0, json.dumps({"nftables": [{"chain": {"policy": "drop"}}]}), ""
    )
    result = v1.run()["nftables"]
    assert result.status is Status.WARN
    assert result.fix == "apt-get install iptables"


def test_ip_forwarding_off_warns_with_sysctl(v1: Scenario) -> None:
    v1.host.files["/proc/sys/net/ipv4/ip_forward"] = "0\n"
    result = v1.run()["ip forwarding"]
    assert result.status is Status.WARN
    assert result.fix.startswith("sysctl -w net.ipv4.ip_forward=1")


def test_ipv6_forwarding_off_is_only_mentioned(v1: Scenario) -> None:
    v1.host.files["/proc/sys/net/ipv6/conf/all/forwarding"] = "0\n"
    result = v1.run()["ip forwarding"]
    assert result.status is Status.OK
    assert "enable_ipv6 networks stay local" in result.summary
    assert result.fix == ""


def test_seccomp_without_kernel_support_fails(v1: Scenario) -> None:
    v1.host.files["/proc/self/status"] = f"CapEff:\t{FULL_CAPS}\n"
    result = v1.run()["seccomp"]
    assert result.status is Status.FAIL
    assert "CONFIG_SECCOMP_FILTER" in result.fix


def test_seccomp_without_libseccomp_fails(v1: Scenario) -> None:
    v1.host.libseccomp = PermanentError(
        "seccomp: cannot load libseccomp (libseccomp.so.2): install libseccomp2"
    )
    result = v1.run()["seccomp"]
    assert result.status is Status.FAIL
    assert result.fix == "apt-get install libseccomp2"


def test_seccomp_notes_that_orc_itself_is_filtered(v1: Scenario) -> None:
    v1.host.files["/proc/self/status"] = f"CapEff:\t{FULL_CAPS}\nSeccomp:\t2\nSeccomp_filters:\t1\n"
    result = v1.run()["seccomp"]
    assert result.status is Status.OK
    assert "runs under 1 filter(s)" in result.summary and "libseccomp 2.5.4" in result.summary


# --- subnets --------------------------------------------------------------------------------------


POOL_SUBNETS = [str(net) for pool in ipam.DEFAULT_POOLS_V4 for net in pool.candidates()]


def test_subnets_count_what_ipam_could_still_hand_out() -> None:
    routed, leased, third = POOL_SUBNETS[:3]
    result = checks.check_subnets([routed, "10.0.0.0/8"], leased=[leased])
    assert result.status is Status.OK
    total = len(POOL_SUBNETS)
    assert result.summary == f"{total - 2} of {total} pool subnets free, next {third} (2 host routes)"


def test_subnets_all_routed_fail() -> None:
    result = checks.check_subnets(["172.16.0.0/12", "192.168.0.0/16"], leased=[])
    covered = [ipaddress.IPv4Network("172.16.0.0/12"), ipaddress.IPv4Network("192.168.0.0/16")]
    assert all(any(ipaddress.IPv4Network(s).subnet_of(c) for c in covered) for s in POOL_SUBNETS)
    assert result.status is Status.FAIL
    assert "ipam subnet" in result.fix


def test_subnets_read_leases_from_the_network_state_file(v1: Scenario) -> None:
    subnet = ipaddress.ip_network(POOL_SUBNETS[0])
    lease = {"subnet": str(subnet), "gateway": str(subnet.network_address + 1)}
    state = {"version": 1, "ipam": {"networks": {"p_default": {"subnets": [lease]}}}}
    v1.host.files["/run/orc/network/network/state.json"] = json.dumps(state)
    total = len(POOL_SUBNETS)
    summary = v1.run()["subnets"].summary
    assert summary.startswith(f"{total - 1} of {total} pool subnets free, next {POOL_SUBNETS[1]}")


def test_subnets_without_routes_are_skipped(v1: Scenario) -> None:
    v1.host.routes = PermanentError("netlink: permission denied")
    assert v1.run()["subnets"].status is Status.SKIP


def test_corrupt_network_state_is_ignored() -> None:
    assert checks.leased_subnets("{not json") == []
    assert checks.leased_subnets(None) == []


# --- binaries -------------------------------------------------------------------------------------


def test_elf_static_detection() -> None:
    assert checks.elf_is_static(static_elf()) is True
    assert checks.elf_is_static(dynamic_elf()) is False
    assert checks.elf_is_static(b"#!/bin/sh\necho hi\n" + b"\0" * 64) is None
    assert checks.elf_is_static(static_elf()[:66]) is None  # program headers cut off


def test_elf_32_bit_big_endian() -> None:
    head = bytearray(52 + 32)
    head[:4] = b"\x7fELF"
    head[4], head[5] = 1, 2  # ELFCLASS32, big endian
    head[0x1C:0x20] = (52).to_bytes(4, "big")
    head[0x2A:0x2C] = (32).to_bytes(2, "big")
    head[0x2C:0x2E] = (1).to_bytes(2, "big")
    head[52:56] = (3).to_bytes(4, "big")  # PT_INTERP
    assert checks.elf_is_static(bytes(head)) is False


def test_missing_tini_warns_with_package(v1: Scenario) -> None:
    del v1.host.binaries["/usr/bin/tini-static"]
    result = v1.run()["tini"]
    assert result.status is Status.WARN
    assert result.fix == "apt-get install tini"
    assert "init: true" in result.summary
    assert exit_code(v1.results) == 0


def test_dynamic_tini_warns(v1: Scenario) -> None:
    v1.host.binaries["/usr/bin/tini-static"] = dynamic_elf()
    result = v1.run()["tini"]
    assert result.status is Status.WARN
    assert "dynamically linked" in result.summary


def test_busybox_not_executable(v1: Scenario) -> None:
    v1.host.executable.discard("/bin/busybox")
    result = v1.run()["busybox"]
    assert result.status is Status.WARN
    assert result.fix == "chmod 755 /bin/busybox"


# --- disk -------------------------------------------------------------------------------------------


def test_disk_reports_the_nearest_existing_parent(v1: Scenario) -> None:
    result = v1.run()["disk lib"]
    assert result.status is Status.OK
    assert result.summary == "50.0 GiB free of 100.0 GiB under /var/lib/orc (on /var/lib)"


@pytest.mark.parametrize(
    ("free", "inodes", "status"),
    [
        (50 * MiB, 10**6, Status.FAIL),
        (1 * GiB, 10**6, Status.WARN),
        (10 * GiB, 500, Status.WARN),
        (10 * GiB, 10**6, Status.OK),
    ],
)
def test_disk_thresholds(free: int, inodes: int, status: Status) -> None:
    usage = DiskUsage("/var/lib", free, 100 * GiB, inodes, 2 * 10**6)
    result = checks.check_disk("lib", "/var/lib/orc", usage)
    assert result.status is status
    if status is not Status.OK:
        assert "--root DIR" in result.fix


def test_disk_unknown_is_skipped(v1: Scenario) -> None:
    v1.host.disks.clear()
    assert v1.run()["disk run"].status is Status.SKIP


# --- registry --------------------------------------------------------------------------------------


def test_registry_contacted_only_when_named(v1: Scenario) -> None:
    v1.run()
    assert not any(call[0] == "ping" for call in v1.host.calls)
    v1.host.registries["registry.local:5000"] = RegistryPing("https", "bearer")
    result = v1.run(registry="registry.local:5000")["registry"]
    assert result.status is Status.OK
    assert result.summary == "registry.local:5000 answers /v2/ over https (asks for bearer auth)"
    assert [c for c in v1.host.calls if c[0] == "ping"] == [("ping", "registry.local:5000")]


def test_unreachable_registry_fails(v1: Scenario) -> None:
    v1.host.registries["down:5000"] = TemporaryError("registry down:5000 is unreachable: connection refused")
    result = v1.run(registry="down:5000")["registry"]
    assert result.status is Status.FAIL
    assert "ORC_INSECURE_REGISTRIES=down:5000" in result.fix
    assert exit_code(v1.results) == 1


# --- the CLI ------------------------------------------------------------------------------------------


def test_plain_lines_are_aligned() -> None:
    from orchestrator.cli.verb_doctor import plain_lines

    lines = plain_lines(
        [
            CheckResult("root", Status.OK, "running as root (uid 0)"),
            CheckResult("ip forwarding", Status.WARN, "off", "sysctl -w net.ipv4.ip_forward=1"),
        ]
    )
    assert lines == [
        "ok    root           running as root (uid 0)",
        "warn  ip forwarding  off  (fix: sysctl -w net.ipv4.ip_forward=1)",
    ]


def test_cli_json_and_exit_code(v1: Scenario, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import orchestrator.runtime.doctor as doctor
    from orchestrator.cli.app import app

    v1.host.files["/proc/sys/net/ipv4/ip_forward"] = "0\n"
    monkeypatch.setattr(doctor, "LocalHost", lambda registry_options=None: v1.host)
    monkeypatch.setattr(doctor, "diagnose", lambda host, options: diagnose(host, _with_root(options, v1)))
    result = CliRunner().invoke(app, ["--root", str(tmp_path), "doctor", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == NAMES
    forwarding = next(c for c in report["checks"] if c["name"] == "ip forwarding")
    assert forwarding["status"] == "warn" and forwarding["fix"].startswith("sysctl")

    v1.host.uid = 1000
    result = CliRunner().invoke(app, ["doctor", "--format", "plain"])
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith("fail  root")


def _with_root(options: DoctorOptions, scenario: Scenario) -> DoctorOptions:
    return DoctorOptions(
        run_root=options.run_root,
        lib_root=options.lib_root,
        registry=options.registry,
        cgroup_root=scenario.fs.root,
    )


def test_cli_rejects_unknown_format() -> None:
    from orchestrator.cli.app import app

    result = CliRunner().invoke(app, ["doctor", "--format", "xml"])
    assert result.exit_code != 0


def test_verb_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, typer; before = set(sys.modules); import orchestrator.cli.verb_doctor; "
        "new = set(sys.modules) - before; "
        "print(sorted(m for m in new if m.startswith(('orchestrator.runtime', 'pyroute2', 'httpx', 'rich', 'anyio'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- the sandbox probe's safety, without root -----------------------------------------------------


def test_sandbox_touches_nothing_when_it_cannot_unshare(tmp_path: Path) -> None:
    from orchestrator.runtime.doctor import sandbox
    from orchestrator.runtime.process.fake import RecordingKernel

    kernel = RecordingKernel()
    kernel.fail_on["unshare"] = PermissionError(errno.EPERM, "Operation not permitted")
    report = sandbox.run(tmp_path, kernel)
    assert kernel.names() == ["unshare"]
    assert (
        report.overlay
        == report.bridge
        == report.veth
        == "cannot enter private namespaces: Operation not permitted"
    )
    assert list(tmp_path.iterdir()) == []


def test_sandbox_makes_mounts_private_before_anything_else(tmp_path: Path) -> None:
    from orchestrator.runtime.doctor import sandbox
    from orchestrator.runtime.process import kernel as k
    from orchestrator.runtime.process.fake import RecordingKernel

    kernel = RecordingKernel()
    sandbox.enter_private_namespaces(kernel)
    assert kernel.calls == [
        ("unshare", k.CLONE_NEWNS | k.CLONE_NEWNET),
        ("mount", None, "/", None, k.MS_REC | k.MS_PRIVATE, None),
    ]
    kernel = RecordingKernel()
    kernel.fail_on["mount"] = PermissionError(errno.EPERM, "Operation not permitted")
    report = sandbox.run(tmp_path, kernel)
    assert kernel.names() == ["unshare", "mount"]
    assert report.overlay is not None and report.overlay.startswith("cannot enter private namespaces")


def test_overlay_probe_notices_a_mount_that_does_nothing(tmp_path: Path) -> None:
    from orchestrator.runtime.doctor import sandbox
    from orchestrator.runtime.process.fake import RecordingKernel

    kernel = RecordingKernel()  # "mounts" without effect: merged stays a plain directory
    error = sandbox.probe_overlay(kernel, tmp_path)
    assert error == "a file written through the mount did not land in the upper dir"
    mount = next(c for c in kernel.calls if c[0] == "mount")
    assert mount[1:4] == ("overlay", str(tmp_path / "merged"), "overlay")
    assert (
        mount[5] == f"lowerdir={tmp_path / 'lower'},upperdir={tmp_path / 'upper'},workdir={tmp_path / 'work'}"
    )
    assert kernel.names()[-1] == "umount"


def test_sandbox_command_refuses_a_directory_it_does_not_own(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep")
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.runtime.doctor.sandbox", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "must be an existing empty directory" in done.stderr
    assert (tmp_path / "precious").read_text() == "keep"
