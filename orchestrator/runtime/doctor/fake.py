"""``FakeHost``: a ``host.Host`` answering from plain data, recording what was asked of it.

Unit tests build one per scenario (``FakeHost.healthy()`` is a root host with everything orc
needs; tests then remove or break one thing). Its cgroup filesystem is whatever the test passes,
usually ``orchestrator.runtime.cgroups.fake.FakeCgroupFs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from orchestrator.errors import OrcError
from orchestrator.runtime.cgroups.fs import CgroupFs
from orchestrator.runtime.doctor.checks import DiskUsage, RegistryPing, SandboxReport
from orchestrator.runtime.network.firewall import CommandResult, CommandRunner

GiB = 1 << 30
FULL_CAPS = "000001ffffffffff"
T = TypeVar("T")


def static_elf() -> bytes:
    """The head of a 64-bit little-endian ELF executable with one PT_LOAD and no PT_INTERP."""
    return _elf([1])


def dynamic_elf() -> bytes:
    """The head of a 64-bit ELF executable that names a program interpreter (PT_INTERP)."""
    return _elf([6, 3, 1])


def _elf(program_header_types: list[int]) -> bytes:
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4] = 2  # ELFCLASS64
    header[5] = 1  # little endian
    header[0x20:0x28] = (64).to_bytes(8, "little")  # e_phoff
    header[0x36:0x38] = (56).to_bytes(2, "little")  # e_phentsize
    header[0x38:0x3A] = len(program_header_types).to_bytes(2, "little")  # e_phnum
    for p_type in program_header_types:
        entry = bytearray(56)
        entry[:4] = p_type.to_bytes(4, "little")
        header += entry
    return bytes(header)


@dataclass
class FakeHost:
    cgroups: CgroupFs
    files: dict[str, str] = field(default_factory=dict)
    binaries: dict[str, bytes] = field(default_factory=dict)
    executable: set[str] = field(default_factory=set)
    programs: dict[str, str] = field(default_factory=dict)
    commands: dict[tuple[str, ...], CommandResult] = field(default_factory=dict)
    runner: CommandRunner | None = None
    """Answers ``which``/``run`` calls that ``programs``/``commands`` do not (e.g. the network
    package's ``RecordingRunner`` for the firewall's own iptables queries)."""
    uid: int = 0
    process_id: int = 4242
    disks: dict[str, DiskUsage] = field(default_factory=dict)
    sandbox_report: SandboxReport | OrcError | None = None
    libseccomp: str | OrcError = "2.5.4"
    routes: list[str] | OrcError = field(default_factory=list)
    registries: dict[str, RegistryPing | OrcError] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    @classmethod
    def healthy(cls, cgroups: CgroupFs, proc_self_cgroup: str) -> FakeHost:
        """A root host on which every check passes (cgroups as the given fake fs has them)."""
        host = cls(cgroups=cgroups)
        host.files.update(
            {
                "/proc/self/status": f"Name:\torc\nCapEff:\t{FULL_CAPS}\nSeccomp:\t0\nSeccomp_filters:\t0\n",
                "/proc/self/cgroup": proc_self_cgroup,
                "/proc/filesystems": "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n",
                "/proc/sys/net/ipv4/ip_forward": "1\n",
                "/proc/sys/user/max_user_namespaces": "63000\n",
                "/proc/sys/kernel/cap_last_cap": "40\n",
            }
        )
        for ns in ("pid", "mnt", "uts", "ipc", "net", "cgroup", "user"):
            host.files[f"/proc/self/ns/{ns}"] = ""
        for path in ("/usr/bin/tini-static", "/bin/busybox"):
            host.binaries[path] = static_elf()
            host.executable.add(path)
        host.programs["nft"] = "/usr/sbin/nft"
        host.commands[("nft", "list", "tables")] = CommandResult(0, "", "")
        host.routes = ["10.0.2.0/24"]
        host.disks = {
            "/run": DiskUsage("/run", 2 * GiB, 4 * GiB, 100_000, 200_000),
            "/var/lib": DiskUsage("/var/lib", 50 * GiB, 100 * GiB, 1_000_000, 2_000_000),
        }
        host.sandbox_report = SandboxReport(None, None, None, "/var/lib/orc/orc-doctor-x")
        return host

    def read_text(self, path: str) -> str | None:
        return self.files.get(path)

    def read_head(self, path: str, size: int) -> bytes | None:
        data = self.binaries.get(path)
        return data[:size] if data is not None else None

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.binaries

    def is_executable(self, path: str) -> bool:
        return path in self.executable

    def which(self, program: str) -> str | None:
        found = self.programs.get(program)
        if found is None and self.runner is not None:
            return self.runner.which(program)
        return found

    def run(self, argv: Sequence[str], input: str | None = None) -> CommandResult:
        self.calls.append(("run", *argv))
        answer = self.commands.get(tuple(argv))
        if answer is not None:
            return answer
        if self.runner is not None:
            return self.runner.run(argv, input)
        return CommandResult(1, "", f"{argv[0]}: unexpected call")

    def euid(self) -> int:
        return self.uid

    def pid(self) -> int:
        return self.process_id

    def disk_usage(self, path: str) -> DiskUsage | None:
        current = Path(path)
        while True:
            if str(current) in self.disks:
                return self.disks[str(current)]
            if current.parent == current:
                return None
            current = current.parent

    def cgroup_fs(self) -> CgroupFs:
        return self.cgroups

    def sandbox(self, scratch_parent: str | None) -> SandboxReport:
        self.calls.append(("sandbox", str(scratch_parent)))
        return _answer(self.sandbox_report, "no sandbox answer configured")

    def libseccomp_version(self) -> str:
        return _answer(self.libseccomp, "")

    def host_routes(self) -> list[str]:
        return list(_answer(self.routes, ""))

    def ping_registry(self, host: str) -> RegistryPing:
        self.calls.append(("ping", host))
        return _answer(self.registries.get(host), f"{host} unknown to the fake")


def _answer(value: T | OrcError | None, missing: str) -> T:
    if isinstance(value, OrcError):
        raise value
    if value is None:
        raise OrcError(missing)
    return value
