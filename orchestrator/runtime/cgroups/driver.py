"""Per-container cgroups on v1 and v2 behind one ``CgroupDriver`` interface.

Owns the layout ``<own cgroup>/<prefix>/<project>/<container-id>`` (``prefix`` is ``orc``; per
hierarchy on v1, once on v2), the limit writes, freeze/thaw, stats, OOM accounting, killing and
removal. Never creates, writes or removes anything outside that subtree, except moving the
processes of the supervisor's own v2 cgroup one level down into ``orc-supervisor`` (still inside
it). The reconciler creates a container's cgroups with ``create`` before ``process.start``
releases the container's init; the process runtime puts the init pid into ``handle.directories``.
``open_driver`` picks the backend from the host layout.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from orchestrator.errors import ConflictError, PermanentError, TemporaryError
from orchestrator.runtime.cgroups.fs import CgroupFs, HostCgroupFs, map_os_error
from orchestrator.runtime.cgroups.layout import SUPERVISOR_LEAF, Hierarchy, Layout, detect_layout
from orchestrator.runtime.cgroups.limits import (
    UNLIMITED,
    CgroupLimits,
    blkio_weight_to_io_weight,
    cpu_shares_to_weight,
    limit_value,
    pids_max_value,
    swap_max_value,
)

DEFAULT_ROOT = Path("/sys/fs/cgroup")
DEFAULT_PREFIX = "orc"
# v1 reports "no limit" as the largest page-aligned counter (9223372036854771712 on 4 KiB pages).
_V1_UNLIMITED_FLOOR = 1 << 62
_V2_DEVICE_NOTE = (
    "device access is not confined by the cgroup on v2 (orc loads no eBPF device program): "
    "the process runtime drops CAP_MKNOD and creates only the allowed device nodes"
)


@dataclass(frozen=True)
class CgroupHandle:
    """One container's cgroups.

    ``directories`` holds one directory per hierarchy (one on v2): before the container's init
    is released, its pid is written to ``cgroup.procs`` in each of them. On v1 the cheaper way is
    for the still single-threaded child to write ``0`` into each ``join_files`` entry itself
    (``tasks``: a thread moving itself skips the kernel's global threadgroup lock and its RCU
    wait, ~0.05 ms instead of 6–16 ms per container here). ``notes`` says which requested
    limits this host could not apply and why.
    """

    project: str
    container_id: str
    version: int
    controller_dirs: tuple[tuple[str, Path], ...]
    notes: tuple[str, ...] = ()

    @property
    def directories(self) -> tuple[Path, ...]:
        seen: dict[Path, None] = {}
        for _, directory in self.controller_dirs:
            seen.setdefault(directory, None)
        return tuple(seen)

    @property
    def procs_files(self) -> tuple[Path, ...]:
        return tuple(d / "cgroup.procs" for d in self.directories)

    @property
    def join_files(self) -> tuple[Path, ...]:
        name = "tasks" if self.version == 1 else "cgroup.procs"
        return tuple(d / name for d in self.directories)

    def dir_for(self, controller: str) -> Path | None:
        for name, directory in self.controller_dirs:
            if name == controller:
                return directory
        return None


@dataclass(frozen=True)
class CgroupStats:
    """A snapshot for ``orc stats``/``orc top``; ``None`` where this host cannot tell."""

    cpu_usage_ns: int | None = None
    cpu_user_ns: int | None = None
    cpu_system_ns: int | None = None
    per_cpu_usage_ns: tuple[int, ...] | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_ns: int | None = None
    memory_usage: int | None = None
    memory_limit: int | None = None
    memory_cache: int | None = None
    memory_inactive_file: int | None = None
    pids_current: int | None = None
    pids_limit: int | None = None
    oom_kills: int | None = None


class CgroupDriver(Protocol):
    """What the reconciler and the process runtime need from cgroups."""

    @property
    def version(self) -> int: ...

    def create(self, project: str, container_id: str, limits: CgroupLimits) -> CgroupHandle:
        """Create (or reuse, after a crash) the container's cgroups and apply ``limits``."""

    def open(self, project: str, container_id: str) -> CgroupHandle | None:
        """The handle of existing cgroups (adoption after a supervisor restart), or None."""

    def update(self, handle: CgroupHandle, limits: CgroupLimits) -> tuple[str, ...]:
        """Write the set knobs of ``limits`` to a live container; returns notes."""

    def add_process(self, handle: CgroupHandle, pid: int) -> None: ...

    def pids(self, handle: CgroupHandle) -> list[int]: ...

    def freeze(self, handle: CgroupHandle, timeout: float = 5.0) -> None: ...

    def thaw(self, handle: CgroupHandle) -> None: ...

    def is_frozen(self, handle: CgroupHandle) -> bool: ...

    def stats(self, handle: CgroupHandle) -> CgroupStats: ...

    def oom_kill_count(self, handle: CgroupHandle) -> int: ...

    def oom_killed(self, handle: CgroupHandle, since: int = 0) -> bool:
        """Whether the kernel OOM-killed a process here since the count was ``since``."""

    def kill(self, handle: CgroupHandle, sig: int = signal.SIGKILL, timeout: float = 5.0) -> None:
        """Signal every process; for SIGKILL also wait until the cgroups are empty."""

    def remove(self, handle: CgroupHandle, kill: bool = False, timeout: float = 2.0) -> None:
        """Remove the container's cgroups (killing stragglers first if ``kill``)."""

    def remove_project(self, project: str) -> bool:
        """Remove the project's (and the prefix's) directories if empty; True if all went."""


def check_name(kind: str, name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name or "\n" in name:
        raise PermanentError(f"cgroups: {kind} {name!r} cannot be a cgroup directory name")


class _BaseDriver(ABC):
    """Shared plumbing: paths, reads/writes with error mapping, polling, killing, removal."""

    version = 0

    def __init__(
        self,
        layout: Layout,
        fs: CgroupFs,
        prefix: str = DEFAULT_PREFIX,
        send_signal: Callable[[int, int], None] = os.kill,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        check_name("prefix", prefix)
        self.layout = layout
        self.fs = fs
        self.prefix = prefix
        self._send_signal = send_signal
        self._monotonic = monotonic
        self._sleep = sleep
        self._ready_projects: set[str] = set()
        self._project_dirs: dict[str, tuple[tuple[str, Path], ...]] = {}

    # -- file access ----------------------------------------------------------------------

    def _write(self, path: Path, value: str) -> None:
        try:
            self.fs.write(path, value)
        except OSError as exc:
            raise map_os_error(exc, "write", path, value) from exc

    def _read(self, path: Path) -> str:
        try:
            return self.fs.read(path)
        except OSError as exc:
            raise map_os_error(exc, "read", path) from exc

    def _read_optional(self, path: Path) -> str | None:
        try:
            return self.fs.read(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise map_os_error(exc, "read", path) from exc

    def _mkdir(self, path: Path) -> bool:
        """Create ``path``; False if it already existed."""
        try:
            self.fs.mkdir(path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise map_os_error(exc, "mkdir", path) from exc

    def _rmdir_if_empty(self, path: Path) -> bool:
        try:
            self.fs.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
                return False
            raise map_os_error(exc, "rmdir", path) from exc

    # -- paths ----------------------------------------------------------------------------

    def _project_dir(self, hierarchy: Hierarchy, project: str) -> Path:
        return hierarchy.own_dir / self.prefix / project

    def _container_dirs(self, project: str, container_id: str) -> tuple[tuple[str, Path], ...]:
        check_name("container id", container_id)
        parents = self._project_dirs.get(project)
        if parents is None:
            # Computed once per project: the paths of the hierarchies are fixed for the
            # driver's life, and deriving them took ~0.1 ms per container.
            check_name("project", project)
            parents = tuple(
                (controller, self._project_dir(h, project))
                for h in self.layout.hierarchies
                for controller in (h.controllers or ("unified",))
            )
            self._project_dirs[project] = parents
        return tuple((controller, parent / container_id) for controller, parent in parents)

    def _need_dir(self, handle: CgroupHandle, controller: str, knob: str) -> Path:
        directory = handle.dir_for(controller)
        if directory is None:
            raise PermanentError(f"cgroups: {knob} needs the {controller} controller, which this host lacks")
        return directory

    # -- lifecycle ------------------------------------------------------------------------

    @abstractmethod
    def _prepare_project(self, project: str) -> None:
        """Make ``<own>/<prefix>/<project>`` ready to hold container cgroups."""

    @abstractmethod
    def _apply(self, handle: CgroupHandle, limits: CgroupLimits, creating: bool) -> list[str]:
        """Write the set knobs of ``limits``; return notes on what this host cannot apply."""

    def create(self, project: str, container_id: str, limits: CgroupLimits) -> CgroupHandle:
        limits.validate()
        controller_dirs = self._container_dirs(project, container_id)
        if project not in self._ready_projects:
            self._prepare_project(project)
            self._ready_projects.add(project)
        handle = CgroupHandle(project, container_id, self.version, controller_dirs)
        made: list[Path] = []
        try:
            for directory in handle.directories:
                try:
                    created = self._mkdir(directory)
                except PermanentError:
                    if self.fs.exists(directory.parent):
                        raise
                    # Someone removed the project's parents since we made them: make them again.
                    self._prepare_project(project)
                    created = self._mkdir(directory)
                if created:
                    made.append(directory)
            notes = self._apply(handle, limits, creating=True)
        except BaseException:
            for directory in reversed(made):
                self._rmdir_if_empty(directory)
            raise
        return CgroupHandle(project, container_id, self.version, controller_dirs, tuple(notes))

    def open(self, project: str, container_id: str) -> CgroupHandle | None:
        controller_dirs = self._container_dirs(project, container_id)
        handle = CgroupHandle(project, container_id, self.version, controller_dirs)
        if not all(self.fs.exists(d) for d in handle.directories):
            return None
        return handle

    def update(self, handle: CgroupHandle, limits: CgroupLimits) -> tuple[str, ...]:
        limits.validate()
        return tuple(self._apply(handle, limits, creating=False))

    def add_process(self, handle: CgroupHandle, pid: int) -> None:
        for procs in handle.procs_files:
            self._write(procs, str(pid))

    def _procs_dir(self, handle: CgroupHandle) -> Path:
        for controller in ("pids", "freezer", "memory", "unified"):
            directory = handle.dir_for(controller)
            if directory is not None:
                return directory
        return handle.directories[0]

    def pids(self, handle: CgroupHandle) -> list[int]:
        text = self._read_optional(self._procs_dir(handle) / "cgroup.procs")
        if text is None:
            return []
        return sorted({int(tok) for tok in text.split()})

    def oom_killed(self, handle: CgroupHandle, since: int = 0) -> bool:
        return self.oom_kill_count(handle) > since

    @abstractmethod
    def oom_kill_count(self, handle: CgroupHandle) -> int:
        """How many processes the kernel's OOM killer has killed in this cgroup so far."""

    @abstractmethod
    def freeze(self, handle: CgroupHandle, timeout: float = 5.0) -> None:
        """Freeze every process and wait until the kernel says frozen."""

    @abstractmethod
    def thaw(self, handle: CgroupHandle) -> None:
        """Let the processes run again."""

    @abstractmethod
    def _can_freeze(self, handle: CgroupHandle) -> bool:
        """Whether this host can freeze the container's cgroup."""

    def _kill_all_at_once(self, handle: CgroupHandle) -> bool:
        """Kill everything with one kernel call if the host can (v2 cgroup.kill)."""
        return False

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = self._monotonic() + timeout
        delay = 0.001
        while not done():
            if self._monotonic() >= deadline:
                raise TemporaryError(f"cgroups: timed out after {timeout:g}s waiting for {what}")
            self._sleep(delay)
            delay = min(delay * 2, 0.02)

    def kill(self, handle: CgroupHandle, sig: int = signal.SIGKILL, timeout: float = 5.0) -> None:
        if sig == signal.SIGKILL and self._kill_all_at_once(handle):
            self._wait(lambda: not self.pids(handle), timeout, f"{handle.container_id} to empty")
            return
        deadline = self._monotonic() + timeout
        while True:
            pids = self.pids(handle)
            if not pids:
                return
            # Freezing first stops a fork loop from outrunning us between listing and signalling.
            frozen = False
            if self._can_freeze(handle):
                try:
                    self.freeze(handle, timeout=min(1.0, max(0.05, deadline - self._monotonic())))
                    frozen = True
                except TemporaryError:
                    frozen = False
                pids = self.pids(handle)
            try:
                self._signal_all(pids, sig)
            finally:
                if frozen:
                    self.thaw(handle)
            if sig != signal.SIGKILL:
                return
            try:
                self._wait(
                    lambda: not self.pids(handle),
                    min(0.2, max(0.0, deadline - self._monotonic())),
                    "processes to exit",
                )
                return
            except TemporaryError:
                if self._monotonic() >= deadline:
                    raise TemporaryError(
                        f"cgroups: processes of {handle.container_id} survive SIGKILL after {timeout:g}s: "
                        f"{self.pids(handle)}"
                    ) from None

    def _signal_all(self, pids: Iterable[int], sig: int) -> None:
        for pid in pids:
            try:
                self._send_signal(pid, sig)
            except ProcessLookupError:
                pass
            except PermissionError as exc:
                raise PermanentError(f"cgroups: not allowed to signal pid {pid}") from exc

    def remove(self, handle: CgroupHandle, kill: bool = False, timeout: float = 2.0) -> None:
        if kill:
            self.kill(handle, signal.SIGKILL, timeout=timeout)
        elif self.pids(handle):
            raise ConflictError(
                f"cgroups: {handle.project}/{handle.container_id} still has processes {self.pids(handle)}"
            )
        for directory in reversed(handle.directories):
            # A process that just exited can keep a v1 cgroup busy for a moment.
            self._wait(self._remover(directory), timeout, f"rmdir {directory}")

    def _remover(self, directory: Path) -> Callable[[], bool]:
        return lambda: self._rmdir_if_empty(directory)

    def remove_project(self, project: str) -> bool:
        check_name("project", project)
        removed = True
        for hierarchy in self.layout.hierarchies:
            project_dir = self._project_dir(hierarchy, project)
            if not self._rmdir_if_empty(project_dir):
                removed = False
                continue
            # Other projects (or another orc) may still use the prefix; then it stays.
            self._rmdir_if_empty(project_dir.parent)
            # Prepared again before its next container (a project still in use stays ready:
            # preparing it costs a write per controller).
            self._ready_projects.discard(project)
        return removed


class V1Driver(_BaseDriver):
    """cgroup v1: one directory per hierarchy (co-mounted controllers share one)."""

    version = 1

    def _prepare_project(self, project: str) -> None:
        for hierarchy in self.layout.hierarchies:
            prefix_dir = hierarchy.own_dir / self.prefix
            project_dir = prefix_dir / project
            new_prefix = self._mkdir(prefix_dir)
            if "cpuset" in hierarchy.controllers:
                # A new cpuset has no cpus or mems and refuses tasks; clone_children makes the
                # kernel copy the parent's into every directory created below, so containers
                # need no extra writes.
                if new_prefix or not self._read(prefix_dir / "cpuset.cpus").strip():
                    self._copy_cpuset(hierarchy.own_dir, prefix_dir)
                if self._read(prefix_dir / "cgroup.clone_children").strip() != "1":
                    self._write(prefix_dir / "cgroup.clone_children", "1")
                self._mkdir(project_dir)
                if not self._read(project_dir / "cpuset.cpus").strip():
                    self._copy_cpuset(prefix_dir, project_dir)
            else:
                self._mkdir(project_dir)

    def _copy_cpuset(self, parent: Path, child: Path) -> None:
        for name in ("cpuset.cpus", "cpuset.mems"):
            self._write(child / name, self._read(parent / name).strip())

    def _apply(self, handle: CgroupHandle, limits: CgroupLimits, creating: bool) -> list[str]:
        notes: list[str] = []
        self._apply_memory(handle, limits, notes)
        self._apply_cpu(handle, limits)
        if limits.cpuset_cpus is not None:
            self._write(self._need_dir(handle, "cpuset", "cpuset") / "cpuset.cpus", limits.cpuset_cpus)
        if limits.cpuset_mems is not None:
            self._write(self._need_dir(handle, "cpuset", "cpuset") / "cpuset.mems", limits.cpuset_mems)
        if limits.pids_limit is not None:
            self._write(
                self._need_dir(handle, "pids", "pids_limit") / "pids.max", pids_max_value(limits.pids_limit)
            )
        if limits.blkio_weight is not None:
            self._apply_blkio_weight(handle, limits.blkio_weight, notes)
        if creating:
            self._apply_devices(handle, limits, notes)
        return notes

    def _apply_memory(self, handle: CgroupHandle, limits: CgroupLimits, notes: list[str]) -> None:
        wants_memory = (
            limits.memory is not None
            or limits.memory_reservation is not None
            or limits.memory_swappiness is not None
            or limits.memory_swap is not None
        )
        if limits.oom_kill_group:
            notes.append("oom_kill_group: cgroup v1 has no group OOM kill; only the chosen process dies")
        if not wants_memory:
            return
        directory = self._need_dir(handle, "memory", "a memory limit")
        memsw_file = directory / "memory.memsw.limit_in_bytes"
        swap_total = limits.effective_memory_swap()
        if swap_total is not None and not self.fs.exists(memsw_file):
            if limits.memory_swap is not None:
                notes.append("memory_swap ignored: the kernel has no swap accounting (memory.memsw.*)")
            swap_total = None
        memory_file = directory / "memory.limit_in_bytes"
        if limits.memory is not None and swap_total is not None:
            # memsw must never drop below the memory limit, so the order of the two writes
            # depends on whether the total grows or shrinks.
            current_total = int(self._read(memsw_file))
            if swap_total == UNLIMITED or swap_total > current_total:
                self._write(memsw_file, str(swap_total))
                self._write(memory_file, str(limits.memory))
            else:
                self._write(memory_file, str(limits.memory))
                self._write(memsw_file, str(swap_total))
        elif limits.memory is not None:
            self._write(memory_file, str(limits.memory))
        elif swap_total is not None:
            self._write(memsw_file, str(swap_total))
        if limits.memory_reservation is not None:
            self._write(directory / "memory.soft_limit_in_bytes", str(limits.memory_reservation))
        if limits.memory_swappiness is not None:
            self._write(directory / "memory.swappiness", str(limits.memory_swappiness))

    def _apply_cpu(self, handle: CgroupHandle, limits: CgroupLimits) -> None:
        quota, period = limits.cpu_quota_and_period()
        if limits.cpu_shares is None and quota is None and period is None:
            return
        directory = self._need_dir(handle, "cpu", "a cpu limit")
        if limits.cpu_shares is not None:
            self._write(directory / "cpu.shares", str(limits.cpu_shares))
        writes = []
        if period is not None:
            writes.append((directory / "cpu.cfs_period_us", str(period)))
        if quota is not None:
            writes.append((directory / "cpu.cfs_quota_us", str(quota)))
        try:
            for path, value in writes:
                self._write(path, value)
        except PermanentError:
            # Lowering the period below the current quota's ratio is refused by the kernel
            # when a parent limit applies; the other order then works.
            for path, value in reversed(writes):
                self._write(path, value)

    def _apply_blkio_weight(self, handle: CgroupHandle, weight: int, notes: list[str]) -> None:
        directory = handle.dir_for("blkio")
        if directory is None:
            notes.append("blkio_weight skipped: no blkio controller mounted")
            return
        for name in ("blkio.weight", "blkio.bfq.weight"):
            if self.fs.exists(directory / name):
                self._write(directory / name, str(weight))
                return
        notes.append(
            "blkio_weight skipped: the kernel has neither blkio.weight (CFQ) nor blkio.bfq.weight (BFQ)"
        )

    def _apply_devices(self, handle: CgroupHandle, limits: CgroupLimits, notes: list[str]) -> None:
        rules = limits.device_rules()
        directory = handle.dir_for("devices")
        if rules is None or directory is None:
            return
        self._write(directory / "devices.deny", "a")
        refused = []
        for rule in rules:
            try:
                self.fs.write(directory / "devices.allow", rule.line())
            except PermissionError:
                # The supervisor's own devices cgroup does not allow this one (orc inside a
                # container): a child can never get more than its parent.
                refused.append(rule.line())
            except OSError as exc:
                raise map_os_error(exc, "write", directory / "devices.allow", rule.line()) from exc
        if refused:
            notes.append(
                f"devices not allowed to orc's own cgroup, so not to the container: {', '.join(refused)}"
            )

    # -- freezer --------------------------------------------------------------------------

    def _can_freeze(self, handle: CgroupHandle) -> bool:
        return handle.dir_for("freezer") is not None

    def freeze(self, handle: CgroupHandle, timeout: float = 5.0) -> None:
        state = self._need_dir(handle, "freezer", "pause") / "freezer.state"

        def frozen() -> bool:
            if self._read(state).strip() == "FROZEN":
                return True
            # Writing again nudges tasks that were in the middle of fork or exit.
            self._write(state, "FROZEN")
            return False

        self._write(state, "FROZEN")
        try:
            self._wait(frozen, timeout, f"{handle.container_id} to freeze")
        except TemporaryError:
            self._write(state, "THAWED")
            raise

    def thaw(self, handle: CgroupHandle) -> None:
        state = self._need_dir(handle, "freezer", "unpause") / "freezer.state"
        self._write(state, "THAWED")
        self._wait(lambda: self._read(state).strip() == "THAWED", 5.0, f"{handle.container_id} to thaw")

    def is_frozen(self, handle: CgroupHandle) -> bool:
        directory = handle.dir_for("freezer")
        if directory is None:
            return False
        return self._read(directory / "freezer.state").strip() == "FROZEN"

    # -- stats ----------------------------------------------------------------------------

    def oom_kill_count(self, handle: CgroupHandle) -> int:
        directory = handle.dir_for("memory")
        if directory is None:
            return 0
        text = self._read_optional(directory / "memory.oom_control") or ""
        return _flat_keyed(text).get("oom_kill", 0)

    def stats(self, handle: CgroupHandle) -> CgroupStats:
        values: dict[str, object] = {}
        cpuacct = handle.dir_for("cpuacct")
        if cpuacct is not None:
            values["cpu_usage_ns"] = _int_or_none(self._read_optional(cpuacct / "cpuacct.usage"))
            values["cpu_user_ns"] = _int_or_none(self._read_optional(cpuacct / "cpuacct.usage_user"))
            values["cpu_system_ns"] = _int_or_none(self._read_optional(cpuacct / "cpuacct.usage_sys"))
            percpu = self._read_optional(cpuacct / "cpuacct.usage_percpu")
            if percpu is not None:
                values["per_cpu_usage_ns"] = tuple(int(x) for x in percpu.split())
        cpu = handle.dir_for("cpu")
        if cpu is not None:
            cpu_stat = _flat_keyed(self._read_optional(cpu / "cpu.stat") or "")
            values["cpu_throttled_periods"] = cpu_stat.get("nr_throttled")
            values["cpu_throttled_ns"] = cpu_stat.get("throttled_time")
        memory = handle.dir_for("memory")
        if memory is not None:
            values["memory_usage"] = _int_or_none(self._read_optional(memory / "memory.usage_in_bytes"))
            limit = _int_or_none(self._read_optional(memory / "memory.limit_in_bytes"))
            values["memory_limit"] = None if limit is None or limit >= _V1_UNLIMITED_FLOOR else limit
            memory_stat = _flat_keyed(self._read_optional(memory / "memory.stat") or "")
            values["memory_cache"] = memory_stat.get("total_cache", memory_stat.get("cache"))
            values["memory_inactive_file"] = memory_stat.get(
                "total_inactive_file", memory_stat.get("inactive_file")
            )
            values["oom_kills"] = self.oom_kill_count(handle)
        pids = handle.dir_for("pids")
        if pids is not None:
            values["pids_current"] = _int_or_none(self._read_optional(pids / "pids.current"))
            values["pids_limit"] = _max_or_int(self._read_optional(pids / "pids.max"))
        return CgroupStats(**values)  # type: ignore[arg-type]


class V2Driver(_BaseDriver):
    """cgroup v2: one directory per container in the unified tree."""

    version = 2

    @property
    def _hierarchy(self) -> Hierarchy:
        return self.layout.hierarchies[0]

    def _enable_controllers(self, directory: Path, wanted: Iterable[str]) -> None:
        available = set(self._read(directory / "cgroup.controllers").split())
        enabled = set(self._read(directory / "cgroup.subtree_control").split())
        missing = [c for c in wanted if c in available and c not in enabled]
        if missing:
            self._write(directory / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))

    def _prepare_project(self, project: str) -> None:
        hierarchy = self._hierarchy
        own = hierarchy.own_dir
        wanted = hierarchy.controllers
        enabled = set(self._read(own / "cgroup.subtree_control").split())
        if set(wanted) - enabled and own != hierarchy.mount:
            self._evacuate_own_cgroup(own)
        self._enable_controllers(own, wanted)
        prefix_dir = own / self.prefix
        self._mkdir(prefix_dir)
        self._enable_controllers(prefix_dir, wanted)
        project_dir = prefix_dir / project
        self._mkdir(project_dir)
        self._enable_controllers(project_dir, wanted)

    def _evacuate_own_cgroup(self, own: Path) -> None:
        """Move every process of our own cgroup into the ``orc-supervisor`` leaf below it.

        v2 lets a non-root cgroup either hold processes or hand controllers to children, not
        both; the processes stay inside our subtree.
        """
        leaf = own / SUPERVISOR_LEAF
        self._mkdir(leaf)
        for _ in range(10):
            pids = self._read(own / "cgroup.procs").split()
            if not pids:
                return
            for pid in pids:
                try:
                    self.fs.write(leaf / "cgroup.procs", pid)
                except ProcessLookupError:
                    continue
                except OSError as exc:
                    raise map_os_error(exc, "write", leaf / "cgroup.procs", pid) from exc
        raise TemporaryError(f"cgroups: processes keep appearing in {own}; could not empty it")

    def _apply(self, handle: CgroupHandle, limits: CgroupLimits, creating: bool) -> list[str]:
        notes: list[str] = []
        directory = handle.directories[0]
        available = set(self._hierarchy.controllers)

        def need(controller: str, knob: str) -> None:
            if controller not in available:
                raise PermanentError(
                    f"cgroups: {knob} needs the {controller} controller, which this host lacks"
                )

        if limits.memory is not None:
            need("memory", "memory limit")
            self._write(directory / "memory.max", limit_value(limits.memory))
        swap_total = limits.effective_memory_swap()
        swap = swap_max_value(limits.memory, swap_total)
        if swap is not None:
            need("memory", "memory_swap")
            if self.fs.exists(directory / "memory.swap.max"):
                self._write(directory / "memory.swap.max", swap)
            elif limits.memory_swap is not None:
                notes.append("memory_swap ignored: the kernel has no memory.swap.max (no swap accounting)")
        if limits.memory_reservation is not None:
            need("memory", "memory reservation")
            self._write(directory / "memory.low", str(limits.memory_reservation))
        if limits.memory_swappiness is not None:
            notes.append("memory_swappiness ignored: cgroup v2 has no per-cgroup swappiness")
        if limits.oom_kill_group:
            need("memory", "oom_kill_group")
            self._write(directory / "memory.oom.group", "1")
        if limits.cpu_shares is not None:
            need("cpu", "cpu_shares")
            self._write(directory / "cpu.weight", str(cpu_shares_to_weight(limits.cpu_shares)))
        quota, period = limits.cpu_quota_and_period()
        if quota is not None or period is not None:
            need("cpu", "a cpu quota")
            quota_text = "max" if quota is None or quota == UNLIMITED else str(quota)
            self._write(directory / "cpu.max", f"{quota_text} {period or 100_000}")
        if limits.cpuset_cpus is not None:
            need("cpuset", "cpuset")
            self._write(directory / "cpuset.cpus", limits.cpuset_cpus)
        if limits.cpuset_mems is not None:
            need("cpuset", "cpuset")
            self._write(directory / "cpuset.mems", limits.cpuset_mems)
        if limits.pids_limit is not None:
            need("pids", "pids_limit")
            self._write(directory / "pids.max", pids_max_value(limits.pids_limit))
        if limits.blkio_weight is not None:
            if self.fs.exists(directory / "io.bfq.weight"):
                self._write(directory / "io.bfq.weight", str(limits.blkio_weight))
            elif self.fs.exists(directory / "io.weight"):
                weight = blkio_weight_to_io_weight(limits.blkio_weight)
                self._write(directory / "io.weight", f"default {weight}")
            else:
                notes.append("blkio_weight skipped: no io controller (io.weight / io.bfq.weight)")
        if creating and limits.device_rules() is not None:
            notes.append(_V2_DEVICE_NOTE)
        return notes

    # -- freezer --------------------------------------------------------------------------

    def _events(self, handle: CgroupHandle) -> dict[str, int]:
        return _flat_keyed(self._read(handle.directories[0] / "cgroup.events"))

    def _can_freeze(self, handle: CgroupHandle) -> bool:
        return self.fs.exists(handle.directories[0] / "cgroup.freeze")

    def freeze(self, handle: CgroupHandle, timeout: float = 5.0) -> None:
        self._write(handle.directories[0] / "cgroup.freeze", "1")
        try:
            self._wait(lambda: self._events(handle).get("frozen") == 1, timeout, "freeze")
        except TemporaryError:
            self._write(handle.directories[0] / "cgroup.freeze", "0")
            raise

    def thaw(self, handle: CgroupHandle) -> None:
        self._write(handle.directories[0] / "cgroup.freeze", "0")
        self._wait(lambda: self._events(handle).get("frozen") == 0, 5.0, "thaw")

    def is_frozen(self, handle: CgroupHandle) -> bool:
        return self._events(handle).get("frozen") == 1

    def _kill_all_at_once(self, handle: CgroupHandle) -> bool:
        kill_file = handle.directories[0] / "cgroup.kill"
        if not self.fs.exists(kill_file):
            return False
        self._write(kill_file, "1")
        return True

    # -- stats ----------------------------------------------------------------------------

    def oom_kill_count(self, handle: CgroupHandle) -> int:
        text = self._read_optional(handle.directories[0] / "memory.events") or ""
        return _flat_keyed(text).get("oom_kill", 0)

    def stats(self, handle: CgroupHandle) -> CgroupStats:
        directory = handle.directories[0]
        values: dict[str, object] = {}
        cpu_stat = _flat_keyed(self._read_optional(directory / "cpu.stat") or "")
        if "usage_usec" in cpu_stat:
            values["cpu_usage_ns"] = cpu_stat["usage_usec"] * 1000
            values["cpu_user_ns"] = cpu_stat.get("user_usec", 0) * 1000
            values["cpu_system_ns"] = cpu_stat.get("system_usec", 0) * 1000
        if "nr_throttled" in cpu_stat:
            values["cpu_throttled_periods"] = cpu_stat["nr_throttled"]
            values["cpu_throttled_ns"] = cpu_stat.get("throttled_usec", 0) * 1000
        values["memory_usage"] = _int_or_none(self._read_optional(directory / "memory.current"))
        values["memory_limit"] = _max_or_int(self._read_optional(directory / "memory.max"))
        memory_stat = _flat_keyed(self._read_optional(directory / "memory.stat") or "")
        values["memory_cache"] = memory_stat.get("file")
        values["memory_inactive_file"] = memory_stat.get("inactive_file")
        if self.fs.exists(directory / "memory.events"):
            values["oom_kills"] = self.oom_kill_count(handle)
        values["pids_current"] = _int_or_none(self._read_optional(directory / "pids.current"))
        values["pids_limit"] = _max_or_int(self._read_optional(directory / "pids.max"))
        return CgroupStats(**values)  # type: ignore[arg-type]


def _flat_keyed(text: str) -> dict[str, int]:
    """Parse ``key value`` lines (memory.stat, cpu.stat, memory.events, oom_control)."""
    result = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            result[parts[0]] = int(parts[1])
    return result


def _int_or_none(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    return int(text.strip())


def _max_or_int(text: str | None) -> int | None:
    """``max`` (v2, pids.max) means unlimited: None."""
    if text is None or text.strip() in ("", "max"):
        return None
    return int(text.strip())


@dataclass
class DriverOptions:
    """How to build a driver; tests inject a fake fs, a root and /proc/self/cgroup text."""

    root: Path = DEFAULT_ROOT
    proc_self_cgroup: str | None = None
    fs: CgroupFs = field(default_factory=HostCgroupFs)
    prefix: str = DEFAULT_PREFIX
    send_signal: Callable[[int, int], None] = os.kill
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def open_driver(options: DriverOptions | None = None) -> V1Driver | V2Driver:
    """Detect the host's layout and return the matching backend."""
    options = options or DriverOptions()
    text = options.proc_self_cgroup
    if text is None:
        try:
            with open("/proc/self/cgroup") as f:
                text = f.read()
        except OSError as exc:
            raise map_os_error(exc, "read", Path("/proc/self/cgroup")) from exc
    layout = detect_layout(options.root, text, options.fs)
    backend = V1Driver if layout.version == 1 else V2Driver
    return backend(
        layout,
        options.fs,
        prefix=options.prefix,
        send_signal=options.send_signal,
        monotonic=options.monotonic,
        sleep=options.sleep,
    )
