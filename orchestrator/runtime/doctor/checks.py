"""The checks of ``orc doctor``: one small function per host feature, each over injected inputs.

Every function here takes what it inspects as arguments (file texts, ``which``/``run`` through a
``CommandRunner``, a cgroup filesystem, disk usage numbers, the outcome of the sandbox probe) and
returns one :class:`CheckResult`: what is there, what is missing and the exact command that fixes
it. Nothing here reads the host itself; ``host.diagnose`` gathers the inputs through a ``Host``
(``host.LocalHost`` for real, ``fake.FakeHost`` in unit tests) and calls these in order.

A ``fail`` is something ``orc up`` needs on every host; a ``warn`` is a feature some Compose
files need (or a degraded one); ``skip`` means the check could not run (usually: not root).
"""

from __future__ import annotations

import ipaddress
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from orchestrator.errors import OrcError
from orchestrator.runtime.cgroups.fs import CgroupFs
from orchestrator.runtime.network.firewall import CommandRunner, Firewall


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """One line of the report. ``fix`` is a command or instruction, empty when nothing to do."""

    name: str
    status: Status
    summary: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "summary": self.summary, "fix": self.fix}


@dataclass(frozen=True)
class DiskUsage:
    """``statvfs`` of ``path`` (the state root, or its nearest existing parent)."""

    path: str
    free_bytes: int
    total_bytes: int
    free_inodes: int
    total_inodes: int


@dataclass(frozen=True)
class SandboxReport:
    """What the probe child found in its private mount and network namespaces.

    Each field is None when that step worked, else the error text. ``overlay`` covers mounting
    an overlay and writing through it (the file lands in the upper dir, a deleted lower file
    becomes a whiteout); ``bridge`` and ``veth`` cover creating those links via netlink.
    """

    overlay: str | None
    bridge: str | None
    veth: str | None
    scratch_dir: str

    def to_json(self) -> dict[str, Any]:
        return {
            "overlay": self.overlay,
            "bridge": self.bridge,
            "veth": self.veth,
            "scratch_dir": self.scratch_dir,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxReport:
        return cls(
            data.get("overlay"), data.get("bridge"), data.get("veth"), str(data.get("scratch_dir", ""))
        )


@dataclass(frozen=True)
class RegistryPing:
    """A registry answered ``GET /v2/``: over which scheme, and what authentication it asks for."""

    scheme: str
    auth: str | None  # "bearer", "basic" or None (anonymous access)


# --- root and capabilities --------------------------------------------------------------------

# What orc itself does with each capability it cannot work without.
REQUIRED_CAPABILITIES: dict[str, str] = {
    "CHOWN": "chown volumes and /dev nodes",
    "DAC_OVERRIDE": "write state and layers regardless of modes",
    "FOWNER": "set modes on files it does not own",
    "KILL": "signal container processes",
    "SETGID": "switch to the container's group",
    "SETUID": "switch to the container's user",
    "SETPCAP": "drop capabilities from containers",
    "NET_ADMIN": "bridges, veths, nftables",
    "SYS_ADMIN": "namespaces, mounts, pivot_root, seccomp",
    "MKNOD": "/dev nodes and overlay whiteouts",
}
# What else goes wrong without some of the others (besides cap_add/privileged not granting them).
CAPABILITY_CONSEQUENCES: dict[str, str] = {
    "SYS_RESOURCE": "ulimits above orc's own hard limits and negative oom_score_adj fail",
}


def check_root(euid: int) -> CheckResult:
    if euid == 0:
        return CheckResult("root", Status.OK, "running as root (uid 0)")
    return CheckResult(
        "root",
        Status.FAIL,
        f"running as uid {euid}: up, run, exec, stop and down need root; config, ps, logs and images work",
        "run orc as root (sudo orc ...)",
    )


def _status_field(status_text: str | None, key: str) -> str | None:
    for line in (status_text or "").splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return value.strip()
    return None


def check_capabilities(status_text: str | None, cap_last_cap: str | None, euid: int) -> CheckResult:
    """The effective set (``CapEff`` of /proc/self/status) against what orc needs, and against
    every capability this kernel knows (containers can never get one that orc lacks)."""
    from orchestrator.runtime.process.capabilities import (
        ALL_CAPABILITIES,
        CAPABILITY_NUMBERS,
        last_cap_from_kernel,
    )

    if euid != 0:
        return CheckResult("capabilities", Status.SKIP, "not root: see the root check")
    cap_eff = _status_field(status_text, "CapEff")
    if cap_eff is None:
        return CheckResult("capabilities", Status.SKIP, "no CapEff line in /proc/self/status")
    mask = int(cap_eff, 16)
    held = {name for name, bit in CAPABILITY_NUMBERS.items() if mask >> bit & 1}
    missing = [f"CAP_{name} ({why})" for name, why in REQUIRED_CAPABILITIES.items() if name not in held]
    if missing:
        return CheckResult(
            "capabilities",
            Status.FAIL,
            "root lacks " + ", ".join(missing),
            "run orc with full root capabilities (on the host, or in a privileged container)",
        )
    known = last_cap_from_kernel(cap_last_cap) if cap_last_cap else ALL_CAPABILITIES
    lacking = sorted(known - held, key=CAPABILITY_NUMBERS.__getitem__)
    if lacking:
        names = ", ".join(f"CAP_{name}" for name in lacking)
        consequences = "".join(
            f"; {CAPABILITY_CONSEQUENCES[n]}" for n in lacking if n in CAPABILITY_CONSEQUENCES
        )
        return CheckResult(
            "capabilities",
            Status.WARN,
            f"root lacks {names}: cap_add and privileged cannot grant it to containers{consequences}",
            f"give orc's root {names} (whatever starts orc drops it: a container, "
            "systemd CapabilityBoundingSet=, capsh)",
        )
    return CheckResult(
        "capabilities", Status.OK, f"all {len(known)} capabilities of this kernel are effective"
    )


# --- namespaces -------------------------------------------------------------------------------

# /proc/self/ns entry -> the kernel option that provides it. orc always unshares all six.
NAMESPACES = {
    "pid": "CONFIG_PID_NS",
    "mnt": "CONFIG_NAMESPACES",
    "uts": "CONFIG_UTS_NS",
    "ipc": "CONFIG_IPC_NS",
    "net": "CONFIG_NET_NS",
    "cgroup": "CONFIG_CGROUPS",
}


def check_namespaces(exists: Callable[[str], bool]) -> CheckResult:
    missing = [name for name in NAMESPACES if not exists(f"/proc/self/ns/{name}")]
    if missing:
        options = ", ".join(sorted({NAMESPACES[n] for n in missing}))
        return CheckResult(
            "namespaces",
            Status.FAIL,
            f"kernel lacks {' '.join(missing)} namespaces",
            f"boot a kernel built with {options}",
        )
    return CheckResult("namespaces", Status.OK, " ".join(NAMESPACES))


def check_user_namespaces(exists: Callable[[str], bool], max_user_namespaces: str | None) -> CheckResult:
    """User namespaces are not used by orc yet (rootless comes later), so this never fails."""
    if not exists("/proc/self/ns/user"):
        return CheckResult(
            "user namespaces", Status.OK, "kernel has none (orc does not use them yet)", "CONFIG_USER_NS=y"
        )
    limit = (max_user_namespaces or "").strip()
    if limit == "0":
        return CheckResult(
            "user namespaces",
            Status.OK,
            "disabled, max_user_namespaces=0 (orc does not use them yet)",
            "sysctl -w user.max_user_namespaces=15000",
        )
    shown = f"max {limit}" if limit else "limit unknown"
    return CheckResult("user namespaces", Status.OK, f"available ({shown}); orc does not use them yet")


# --- cgroups ----------------------------------------------------------------------------------

# What each controller gives a Compose file; what is lost without it.
CONTROLLER_FEATURES = {
    "cpu": "cpus/cpu_shares/cpu_quota",
    "cpuacct": "CPU usage in orc stats",
    "cpuset": "cpuset",
    "memory": "mem_limit/memswap_limit/OOM reports",
    "pids": "pids_limit",
    "blkio": "blkio_config.weight",
    "io": "blkio_config.weight",
    "devices": "device confinement",
    "freezer": "pause/unpause",
}


def check_cgroups(
    proc_self_cgroup: str | None,
    fs: CgroupFs,
    root: Path,
    probe_name: str,
    may_write: bool,
) -> CheckResult:
    """Layout through the cgroup driver's own detection; with ``may_write``, a ``mkdir``+``rmdir``
    of ``probe_name`` below our own cgroup in every hierarchy proves it is usable."""
    from orchestrator.runtime.cgroups import DriverOptions, open_driver
    from orchestrator.runtime.cgroups.layout import V1_CONTROLLERS, V2_CONTROLLERS

    if proc_self_cgroup is None:
        return CheckResult("cgroups", Status.FAIL, "cannot read /proc/self/cgroup", "mount /proc")
    try:
        driver = open_driver(DriverOptions(root=root, proc_self_cgroup=proc_self_cgroup, fs=fs))
    except (OrcError, OSError) as exc:
        return CheckResult(
            "cgroups", Status.FAIL, str(exc), f"mount the cgroup filesystem(s) under {root} (cgroup2 or v1)"
        )
    layout = driver.layout
    unusable: dict[str, str] = {}
    probed_ok = 0
    for hierarchy in layout.hierarchies:
        if not may_write:
            break
        probe = hierarchy.own_dir / probe_name
        try:
            fs.mkdir(probe)
            fs.rmdir(probe)
            probed_ok += 1
        except OSError as exc:
            for controller in hierarchy.controllers or ("cgroup2",):
                unusable[controller] = f"mkdir in {hierarchy.own_dir}: {exc.strerror or exc}"
    present = [c for h in layout.hierarchies for c in h.controllers]
    wanted = V1_CONTROLLERS if layout.version == 1 else V2_CONTROLLERS
    absent = [c for c in wanted if c not in present]
    usable = [c for c in present if c not in unusable]
    kind = "v1 (hybrid, driven as v1)" if layout.hybrid else f"v{layout.version}"
    own = sorted({h.own_path for h in layout.hierarchies})
    verdict = "usable" if may_write else "present (not probed: needs root)"
    summary = f"{kind}, below {', '.join(own)}: {' '.join(usable) or 'no controller'} {verdict}"
    if may_write and probed_ok == 0:
        reason = "; ".join(sorted(set(unusable.values())))
        return CheckResult(
            "cgroups",
            Status.FAIL,
            f"{kind}: cannot create cgroups ({reason})",
            "run as root or in a delegated cgroup",
        )
    problems = []
    fixes = []
    if absent:
        lost = ", ".join(CONTROLLER_FEATURES[c] for c in absent)
        problems.append(f"no {' '.join(absent)} controller ({lost} unavailable)")
        if layout.version == 1:
            fixes.append(
                " ; ".join(f"mkdir -p {root / c} && mount -t cgroup -o {c} cgroup {root / c}" for c in absent)
            )
        else:
            parent = layout.hierarchies[0].own_dir.parent
            fixes.append(
                f"enable them in {parent}/cgroup.subtree_control ("
                + " ".join(f"+{c}" for c in absent)
                + "; under systemd: Delegate=yes)"
            )
    if unusable:
        problems.append("; ".join(f"{c}: {why}" for c, why in sorted(unusable.items())))
        fixes.append("run as root or in a delegated cgroup")
    if problems:
        return CheckResult("cgroups", Status.WARN, f"{summary}; " + "; ".join(problems), " ; ".join(fixes))
    return CheckResult("cgroups", Status.OK, summary)


# --- filesystems and links --------------------------------------------------------------------


Probe = SandboxReport | OrcError | None
"""The sandbox probe's outcome: its report, the error that kept it from running, or None when
it was not run (not root)."""


def check_overlay(filesystems: str | None, sandbox: Probe) -> CheckResult:
    """``overlay`` in /proc/filesystems, then (as root) a real mount in the sandbox child."""
    listed = any(line.split()[-1:] == ["overlay"] for line in (filesystems or "").splitlines())
    if not listed:
        return CheckResult(
            "overlayfs",
            Status.FAIL,
            "overlay is not in /proc/filesystems",
            "modprobe overlay (CONFIG_OVERLAY_FS)",
        )
    if sandbox is None:
        return CheckResult("overlayfs", Status.OK, "in /proc/filesystems; mount not probed (needs root)")
    if isinstance(sandbox, OrcError):
        return CheckResult("overlayfs", Status.WARN, f"in /proc/filesystems; mount probe failed: {sandbox}")
    if sandbox.overlay is not None:
        return CheckResult(
            "overlayfs",
            Status.FAIL,
            f"mount in {sandbox.scratch_dir} failed: {sandbox.overlay}",
            "put the state root on ext4 or xfs (overlay cannot use this filesystem for upper dirs)",
        )
    where = str(Path(sandbox.scratch_dir).parent)
    return CheckResult("overlayfs", Status.OK, f"mount, writes and whiteouts work on {where}")


def check_bridge(sandbox: Probe) -> CheckResult:
    if sandbox is None:
        return CheckResult("bridge", Status.SKIP, "not probed (needs root)")
    if isinstance(sandbox, OrcError):
        return CheckResult("bridge", Status.WARN, f"probe failed: {sandbox}")
    failed = [f"{kind}: {err}" for kind, err in (("bridge", sandbox.bridge), ("veth", sandbox.veth)) if err]
    if failed:
        return CheckResult(
            "bridge",
            Status.FAIL,
            "; ".join(failed),
            "modprobe bridge veth (kernel options CONFIG_BRIDGE, CONFIG_VETH)",
        )
    return CheckResult("bridge", Status.OK, "bridge and veth links can be created")


def check_nftables(runner: CommandRunner, is_root: bool) -> CheckResult:
    """``nft`` present and able to list the ruleset; notes a dropping FORWARD policy."""
    path = runner.which("nft")
    if path is None:
        return CheckResult(
            "nftables",
            Status.WARN,
            "nft not found: networks get no masquerading (no outbound traffic) and no isolation",
            "apt-get install nftables",
        )
    if not is_root:
        return CheckResult("nftables", Status.SKIP, f"{path} present; listing needs root")
    try:
        listed = runner.run(["nft", "list", "tables"])
    except OrcError as exc:
        listed_error = str(exc)
    else:
        listed_error = listed.stderr.strip() if listed.returncode != 0 else ""
    if listed_error:
        return CheckResult(
            "nftables",
            Status.WARN,
            f"{path} cannot list tables: {listed_error}",
            "modprobe nf_tables (CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET)",
        )
    summary = f"{path} lists tables"
    try:
        chain = Firewall(runner).forward_shim_chain()
        unforwarded = chain is None and runner.which("iptables") is None and _forward_policy_drops(runner)
    except OrcError as exc:
        return CheckResult("nftables", Status.WARN, f"{summary}; reading the FORWARD chain failed: {exc}")
    if chain is not None:
        summary += f"; FORWARD policy is drop, orc adds accept rules to iptables {chain}"
    elif unforwarded:
        return CheckResult(
            "nftables",
            Status.WARN,
            f"{summary}; the ip filter FORWARD policy is drop and iptables is missing: containers get no traffic",
            "apt-get install iptables",
        )
    return CheckResult("nftables", Status.OK, summary)


def _forward_policy_drops(runner: CommandRunner) -> bool:
    listed = runner.run(["nft", "-j", "list", "chain", "ip", "filter", "FORWARD"])
    if listed.returncode != 0:
        return False
    try:
        items = json.loads(listed.stdout).get("nftables", [])
    except ValueError:
        return False
    return any(item.get("chain", {}).get("policy") == "drop" for item in items)


def check_ip_forward(ipv4: str | None, ipv6: str | None = None) -> CheckResult:
    """IPv4 forwarding is what containers need to leave their bridge; IPv6 forwarding only
    matters to ``enable_ipv6`` networks (and turning it on changes how the host takes router
    advertisements), so it is only mentioned."""
    ipv4 = (ipv4 or "").strip()
    ipv6 = (ipv6 or "").strip()
    note = ""
    if ipv6 == "0":
        note = "; IPv6 forwarding off: enable_ipv6 networks stay local (net.ipv6.conf.all.forwarding=1 routes them)"
    if ipv4 == "1":
        return CheckResult("ip forwarding", Status.OK, f"net.ipv4.ip_forward=1{note}")
    return CheckResult(
        "ip forwarding",
        Status.WARN,
        f"net.ipv4.ip_forward={ipv4 or 'unknown'}: containers cannot reach other networks or the internet{note}",
        "sysctl -w net.ipv4.ip_forward=1 && echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-orc.conf",
    )


def check_seccomp(status_text: str | None, libseccomp_version: Callable[[], str]) -> CheckResult:
    """Kernel support (the Seccomp field exists) and libseccomp, which compiles the default profile."""
    mode = _status_field(status_text, "Seccomp")
    if mode is None:
        return CheckResult(
            "seccomp",
            Status.FAIL,
            "kernel has no seccomp (no Seccomp field in /proc/self/status)",
            "boot a kernel built with CONFIG_SECCOMP_FILTER",
        )
    try:
        version = libseccomp_version()
    except OrcError as exc:
        return CheckResult(
            "seccomp", Status.FAIL, f"kernel supports it; {exc}", "apt-get install libseccomp2"
        )
    summary = f"kernel filter support, libseccomp {version} compiles the default profile"
    if mode == "2":
        filters = _status_field(status_text, "Seccomp_filters")
        summary += f"; orc itself runs under {filters or 'a'} filter(s), which containers inherit"
    return CheckResult("seccomp", Status.OK, summary)


# --- addresses --------------------------------------------------------------------------------


def check_subnets(host_routes: Sequence[str] | OrcError, leased: Sequence[str]) -> CheckResult:
    """How many default-pool subnets the network driver's IPAM could still hand out, given the
    host's routes and the subnets orc's networks already hold."""
    from orchestrator.runtime.network import ipam

    if isinstance(host_routes, OrcError):
        return CheckResult("subnets", Status.SKIP, f"cannot read host routes: {host_routes}")
    taken: list[ipam.IPNetwork] = [ipaddress.ip_network(r, strict=False) for r in (*host_routes, *leased)]
    pools = ipam.DEFAULT_POOLS_V4
    total = sum(1 for pool in pools for _ in pool.candidates())
    free: list[ipam.IPNetwork] = []
    while True:
        try:
            subnet = ipam.choose_subnet(pools, [*taken, *free])
        except OrcError:
            break
        free.append(subnet)
    bases = ", ".join(p.base for p in pools)
    if not free:
        return CheckResult(
            "subnets",
            Status.FAIL,
            f"no free subnet in the default pools ({bases}): routes or networks cover them all",
            "remove unused networks (orc down) or give networks an explicit ipam subnet",
        )
    return CheckResult(
        "subnets",
        Status.OK,
        f"{len(free)} of {total} pool subnets free, next {free[0]} ({len(host_routes)} host routes)",
    )


def leased_subnets(state_json: str | None) -> list[str]:
    """Subnets held by orc networks, from the network driver's state file text (None: no file)."""
    if not state_json:
        return []
    from orchestrator.runtime.network.leases import NetworkState

    try:
        state = NetworkState.from_json(json.loads(state_json))
    except (ValueError, KeyError, TypeError):
        return []
    return [str(net) for net in state.ipam.all_subnets()]


# --- binaries ---------------------------------------------------------------------------------

_PT_INTERP = 3


def elf_is_static(head: bytes) -> bool | None:
    """Whether an ELF executable has no program interpreter (static or static-pie); None if
    ``head`` (the file's first bytes, program headers included) is not an ELF file."""
    if len(head) < 52 or head[:4] != b"\x7fELF":
        return None
    is_64 = head[4] == 2
    order = "<" if head[5] == 1 else ">"
    if is_64:
        if len(head) < 64:
            return None
        (phoff,) = struct.unpack_from(order + "Q", head, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 0x36)
    else:
        (phoff,) = struct.unpack_from(order + "I", head, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 0x2A)
    for index in range(phnum):
        offset = phoff + index * phentsize
        if offset + 4 > len(head):
            return None
        (p_type,) = struct.unpack_from(order + "I", head, offset)
        if p_type == _PT_INTERP:
            return False
    return True


def check_static_binary(
    name: str, path: str, head: bytes | None, executable: bool, purpose: str, fix: str
) -> CheckResult:
    """A static executable at ``path`` (``head`` is its first bytes, None when missing)."""
    if head is None:
        return CheckResult(name, Status.WARN, f"{path} missing: {purpose} will not work", fix)
    if not executable:
        return CheckResult(
            name, Status.WARN, f"{path} is not executable: {purpose} will not work", f"chmod 755 {path}"
        )
    static = elf_is_static(head)
    if static is None:
        return CheckResult(
            name, Status.WARN, f"{path} is not an ELF executable: {purpose} will not work", fix
        )
    if not static:
        return CheckResult(
            name, Status.WARN, f"{path} is dynamically linked: it cannot run inside containers", fix
        )
    return CheckResult(name, Status.OK, f"{path} (static)")


# --- disk ---------------------------------------------------------------------------------------

GiB = 1 << 30
MiB = 1 << 20


def _size(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / MiB:.0f} MiB"


def check_disk(
    label: str,
    root: str,
    usage: DiskUsage | None,
    warn_below: int = 2 * GiB,
    fail_below: int = 100 * MiB,
) -> CheckResult:
    """Free space and inodes on the filesystem that holds (or will hold) a state root."""
    name = f"disk {label}"
    if usage is None:
        return CheckResult(name, Status.SKIP, f"cannot stat {root} or any parent")
    where = root if usage.path == root else f"{root} (on {usage.path})"
    summary = f"{_size(usage.free_bytes)} free of {_size(usage.total_bytes)} under {where}"
    if usage.free_bytes < fail_below:
        return CheckResult(
            name, Status.FAIL, summary, f"free space on {usage.path} or use --root DIR elsewhere"
        )
    low_inodes = usage.total_inodes > 0 and usage.free_inodes < 10_000
    if usage.free_bytes < warn_below or low_inodes:
        if low_inodes:
            summary += f", only {usage.free_inodes} inodes left"
        return CheckResult(
            name, Status.WARN, summary, f"free space on {usage.path} or use --root DIR elsewhere"
        )
    return CheckResult(name, Status.OK, summary)


# --- registry -----------------------------------------------------------------------------------


def check_registry(host: str | None, ping: Callable[[str], RegistryPing]) -> CheckResult:
    """Only the host the user named is contacted; without one the check is skipped."""
    if host is None:
        return CheckResult("registry", Status.SKIP, "not checked (orc doctor --registry HOST)")
    try:
        answer = ping(host)
    except OrcError as exc:
        message = str(exc)
        return CheckResult(
            "registry",
            Status.FAIL,
            message if host in message else f"{host}: {message}",
            f"check the address, proxy and CA (certs.d/{host}/ca.crt); plain HTTP to a host other than "
            f"loopback needs ORC_INSECURE_REGISTRIES={host}",
        )
    auth = f"asks for {answer.auth} auth" if answer.auth else "anonymous access"
    return CheckResult("registry", Status.OK, f"{host} answers /v2/ over {answer.scheme} ({auth})")


def exit_code(results: Sequence[CheckResult]) -> int:
    """Non-zero only when something required is missing."""
    return 1 if any(r.status is Status.FAIL for r in results) else 0
