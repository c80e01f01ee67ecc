"""The host as ``orc doctor`` sees it, and ``diagnose``, which runs every check in order.

``Host`` is the one Protocol behind which all of the doctor's reads and probes sit: file reads,
``which``/``run`` (the network driver's ``CommandRunner`` shape), ``statvfs``, the cgroup
filesystem, the sandbox probe, libseccomp, host routes and the registry ping. ``LocalHost`` is the
real one; ``fake.FakeHost`` answers from dictionaries for unit tests. Called by
``orchestrator.cli.verb_doctor``.

The sandbox probe runs ``python -m orchestrator.runtime.doctor.sandbox`` as a child that first
unshares its own mount and network namespaces (see that module), so the overlay mount and test
links it makes vanish with it whatever happens; this process only creates and removes the
scratch directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from orchestrator.errors import OrcError, PermanentError, TemporaryError
from orchestrator.runtime.cgroups.fs import CgroupFs, HostCgroupFs
from orchestrator.runtime.doctor import checks
from orchestrator.runtime.doctor.checks import CheckResult, DiskUsage, RegistryPing, SandboxReport
from orchestrator.runtime.network.firewall import CommandResult, SubprocessRunner
from orchestrator.runtime.process.spec import Init

if TYPE_CHECKING:
    from orchestrator.runtime.images.registry import RegistryOptions

DEFAULT_CGROUP_ROOT = Path("/sys/fs/cgroup")
DEFAULT_INIT_PATH = Init().host_path
DEFAULT_BUSYBOX_PATH = "/bin/busybox"
_HEAD_BYTES = 4096  # enough for an ELF header and its program headers


class Host(Protocol):
    """Everything the doctor reads or probes."""

    def read_text(self, path: str) -> str | None:
        """The file's text, or None when it is missing or unreadable."""

    def read_head(self, path: str, size: int) -> bytes | None:
        """The first ``size`` bytes, or None when the file is missing or unreadable."""

    def exists(self, path: str) -> bool: ...

    def is_executable(self, path: str) -> bool: ...

    def which(self, program: str) -> str | None: ...

    def run(self, argv: Sequence[str], input: str | None = None) -> CommandResult: ...

    def euid(self) -> int: ...

    def pid(self) -> int: ...

    def disk_usage(self, path: str) -> DiskUsage | None:
        """``statvfs`` of ``path`` or, if it does not exist yet, of its nearest existing parent."""

    def cgroup_fs(self) -> CgroupFs: ...

    def sandbox(self, scratch_parent: str | None) -> SandboxReport:
        """Run the overlay/bridge/veth probe in private namespaces; raises OrcError if it cannot."""

    def libseccomp_version(self) -> str:
        """The version of libseccomp, loaded as the process runtime loads it and shown to compile
        the default profile; raises PermanentError if either fails."""

    def host_routes(self) -> list[str]:
        """Routed prefixes of the main table (no default routes); raises OrcError on failure."""

    def ping_registry(self, host: str) -> RegistryPing:
        """``GET /v2/`` on ``host`` and nothing else; raises OrcError when it does not answer."""


@dataclass(frozen=True)
class DoctorOptions:
    run_root: Path
    lib_root: Path
    registry: str | None = None
    cgroup_root: Path = DEFAULT_CGROUP_ROOT
    init_path: str = DEFAULT_INIT_PATH
    busybox_path: str = DEFAULT_BUSYBOX_PATH


def network_state_file(run_root: Path) -> Path:
    """Where the network driver keeps its IPAM book (the reconciler roots it at ``run/network``)."""
    from orchestrator.runtime.network.leases import FileLeaseStore

    return FileLeaseStore(run_root / "network").path


def diagnose(host: Host, options: DoctorOptions) -> list[CheckResult]:
    """Every check, in the order the report lists them."""
    euid = host.euid()
    is_root = euid == 0
    status_text = host.read_text("/proc/self/status")
    results = [
        checks.check_root(euid),
        checks.check_capabilities(status_text, host.read_text("/proc/sys/kernel/cap_last_cap"), euid),
        checks.check_namespaces(host.exists),
        checks.check_user_namespaces(host.exists, host.read_text("/proc/sys/user/max_user_namespaces")),
        checks.check_cgroups(
            host.read_text("/proc/self/cgroup"),
            host.cgroup_fs(),
            options.cgroup_root,
            f"orc-doctor-{host.pid()}",
            may_write=is_root,
        ),
    ]
    sandbox: checks.Probe = None
    if is_root:
        scratch_parent = str(options.lib_root) if host.exists(str(options.lib_root)) else None
        try:
            sandbox = host.sandbox(scratch_parent)
        except OrcError as exc:
            sandbox = exc
    results.append(checks.check_overlay(host.read_text("/proc/filesystems"), sandbox))
    results.append(checks.check_bridge(sandbox))
    results.append(checks.check_nftables(host, is_root))
    results.append(
        checks.check_ip_forward(
            host.read_text("/proc/sys/net/ipv4/ip_forward"),
            host.read_text("/proc/sys/net/ipv6/conf/all/forwarding"),
        )
    )
    results.append(checks.check_seccomp(status_text, host.libseccomp_version))
    routes: list[str] | OrcError
    try:
        routes = host.host_routes()
    except OrcError as exc:
        routes = exc
    leased = checks.leased_subnets(host.read_text(str(network_state_file(options.run_root))))
    results.append(checks.check_subnets(routes, leased))
    results.append(
        checks.check_static_binary(
            "tini",
            options.init_path,
            host.read_head(options.init_path, _HEAD_BYTES),
            host.is_executable(options.init_path),
            "init: true",
            "apt-get install tini",
        )
    )
    results.append(
        checks.check_static_binary(
            "busybox",
            options.busybox_path,
            host.read_head(options.busybox_path, _HEAD_BYTES),
            host.is_executable(options.busybox_path),
            "the examples' x-orc busybox rootfs",
            "apt-get install busybox-static",
        )
    )
    for label, root in (("run", options.run_root), ("lib", options.lib_root)):
        results.append(checks.check_disk(label, str(root), host.disk_usage(str(root))))
    results.append(checks.check_registry(options.registry, host.ping_registry))
    return results


# --- the real host ------------------------------------------------------------------------------


class LocalHost:
    """The machine orc runs on. ``registry_options`` (certificates, insecure hosts, credentials)
    come from the CLI, which is the layer that reads the environment."""

    def __init__(
        self,
        registry_options: RegistryOptions | None = None,
        sandbox_timeout: float = 30.0,
        registry_timeout: float = 10.0,
    ) -> None:
        self._runner = SubprocessRunner()
        self._registry_options = registry_options
        self._sandbox_timeout = sandbox_timeout
        self._registry_timeout = registry_timeout

    def read_text(self, path: str) -> str | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def read_head(self, path: str, size: int) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read(size)
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def is_executable(self, path: str) -> bool:
        return os.path.isfile(path) and os.access(path, os.X_OK)

    def which(self, program: str) -> str | None:
        return self._runner.which(program)

    def run(self, argv: Sequence[str], input: str | None = None) -> CommandResult:
        return self._runner.run(argv, input)

    def euid(self) -> int:
        return os.geteuid()

    def pid(self) -> int:
        return os.getpid()

    def disk_usage(self, path: str) -> DiskUsage | None:
        current = Path(path).absolute()
        while True:
            try:
                st = os.statvfs(current)
            except FileNotFoundError:
                if current.parent == current:
                    return None
                current = current.parent
                continue
            except OSError:
                return None
            return DiskUsage(
                path=str(current),
                free_bytes=st.f_bavail * st.f_frsize,
                total_bytes=st.f_blocks * st.f_frsize,
                free_inodes=st.f_favail,
                total_inodes=st.f_files,
            )

    def cgroup_fs(self) -> CgroupFs:
        return HostCgroupFs()

    def sandbox(self, scratch_parent: str | None) -> SandboxReport:
        try:
            scratch = tempfile.mkdtemp(prefix="orc-doctor-", dir=scratch_parent)
        except OSError as exc:
            raise PermanentError(f"cannot create a scratch directory in {scratch_parent}: {exc}") from exc
        try:
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "orchestrator.runtime.doctor.sandbox", scratch],
                    capture_output=True,
                    text=True,
                    timeout=self._sandbox_timeout,
                )
            except subprocess.TimeoutExpired as exc:
                raise TemporaryError(f"sandbox probe did not finish in {self._sandbox_timeout:g}s") from exc
            except OSError as exc:
                raise PermanentError(f"cannot start the sandbox probe: {exc}") from exc
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise PermanentError(f"sandbox probe exited with {done.returncode}: {tail}")
            try:
                return SandboxReport.from_json(json.loads(done.stdout))
            except ValueError as exc:
                raise PermanentError(f"sandbox probe printed no report: {done.stdout[:200]!r}") from exc
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def libseccomp_version(self) -> str:
        from orchestrator.runtime.process.capabilities import DEFAULT_CAPABILITIES
        from orchestrator.runtime.process.seccomp import LibSeccomp, default_profile

        library = LibSeccomp()
        version = library.version()
        try:
            library.compile(default_profile(DEFAULT_CAPABILITIES))
        except OrcError as exc:
            raise PermanentError(f"libseccomp {version} cannot compile the default profile: {exc}") from exc
        return version

    def host_routes(self) -> list[str]:
        from orchestrator.runtime.network.netlink import PyrouteLinkOps

        try:
            return PyrouteLinkOps().host_routes()
        except OrcError:
            raise
        except Exception as exc:  # pyroute2 raises its own NetlinkError and OSError
            raise PermanentError(f"reading routes over netlink: {exc}") from exc

    def ping_registry(self, host: str) -> RegistryPing:
        import anyio

        return anyio.run(self._ping, host)

    async def _ping(self, host: str) -> RegistryPing:
        from dataclasses import replace

        from orchestrator.runtime.images.registry import RegistryClient, RegistryOptions

        options = replace(
            self._registry_options or RegistryOptions(), retries=0, timeout=self._registry_timeout
        )
        async with RegistryClient(options) as client:
            # The images package has no public ping yet: ``_pick_scheme`` is exactly
            # GET /v2/ with its TLS, certs.d and insecure-host rules, so it is reused here.
            state = client._host(host)
            scheme = await client._pick_scheme(state)
            return RegistryPing(scheme, state.challenge.scheme.lower() if state.challenge else None)
