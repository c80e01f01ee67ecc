"""Fakes for the cgroup driver, shipped so other layers can test without root.

``FakeCgroupFs`` is a small kernel imitation in a temporary directory: mkdir populates the
interface files (with the kernel's formats) for the controllers of that hierarchy (v1) or those
enabled in the parent's ``cgroup.subtree_control`` (v2), writes are checked the way the kernel
checks them (memsw ≥ memory, empty cpusets refuse tasks, no internal processes on v2, ...), and
processes are pids that move between ``cgroup.procs`` files. ``RecordingCgroupDriver`` is an
in-memory ``CgroupDriver`` that records its calls, for reconciler and process-runtime tests.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator.errors import ConflictError
from orchestrator.runtime.cgroups.driver import CgroupHandle, CgroupStats
from orchestrator.runtime.cgroups.limits import CgroupLimits

V1_UNLIMITED = 9223372036854771712
DEFAULT_V1_HIERARCHIES: dict[str, tuple[str, ...]] = {
    "cpu,cpuacct": ("cpu", "cpuacct"),
    "cpuset": ("cpuset",),
    "memory": ("memory",),
    "pids": ("pids",),
    "blkio": ("blkio",),
    "devices": ("devices",),
    "freezer": ("freezer",),
}
V2_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")


def _oserror(code: int, path: Path) -> OSError:
    return OSError(code, os.strerror(code), str(path))


@dataclass
class _Mount:
    path: Path
    controllers: tuple[str, ...]
    version: int


class FakeCgroupFs:
    """A cgroupfs imitation rooted at a real temporary directory (see module docstring)."""

    def __init__(self, root: Path, self_pid: int = 4242) -> None:
        self.root = root
        self.self_pid = self_pid
        self.mounts: list[_Mount] = []
        self.proc_lines: list[str] = []
        self.signals: list[tuple[int, int]] = []
        self.writes: list[tuple[Path, str]] = []
        self.freezing_reads = 0
        """Reads of freezer.state that still answer FREEZING after a FROZEN write."""
        self.busy_rmdirs = 0
        """rmdir calls that fail with EBUSY before the kernel lets go."""
        self.swap_accounting = True
        self.blkio_files: tuple[str, ...] = ("blkio.weight",)
        self.io_files: tuple[str, ...] = ("io.weight",)
        self.cgroup_kill = True
        self.cpus = "0-1"
        self.mems = "0"
        self._where: dict[int, set[Path]] = {}

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def v1(
        cls,
        root: Path,
        hierarchies: dict[str, tuple[str, ...]] | None = None,
        own_paths: dict[str, str] | None = None,
        hybrid: bool = False,
        swap_accounting: bool = True,
        blkio_files: tuple[str, ...] = ("blkio.weight",),
    ) -> FakeCgroupFs:
        """Per-controller hierarchies named like the mount points (``cpu,cpuacct``);
        ``own_paths`` puts the supervisor below the root in some hierarchies."""
        fake = cls(root)
        fake.swap_accounting = swap_accounting
        fake.blkio_files = blkio_files
        own_paths = own_paths or {}
        root.mkdir(parents=True, exist_ok=True)
        for index, (name, controllers) in enumerate((hierarchies or DEFAULT_V1_HIERARCHIES).items(), 1):
            mount = root / name
            mount.mkdir()
            fake.mounts.append(_Mount(mount, controllers, 1))
            fake._populate_v1(mount, controllers, parent=None)
            own = own_paths.get(name, "/")
            fake._make_parents(mount, own)
            fake.proc_lines.append(f"{index}:{name}:{own}")
        if hybrid:
            unified = root / "unified"
            unified.mkdir()
            fake.mounts.append(_Mount(unified, (), 2))
            fake._put(unified / "cgroup.controllers", "")
            fake._put(unified / "cgroup.subtree_control", "")
            fake._put(unified / "cgroup.procs", "")
            fake.proc_lines.append("0::/")
        return fake

    @classmethod
    def v2(
        cls,
        root: Path,
        controllers: tuple[str, ...] = V2_CONTROLLERS,
        own_path: str = "/",
        pids_in_own: Iterable[int] = (),
        cgroup_kill: bool = True,
        swap_accounting: bool = True,
        io_files: tuple[str, ...] = ("io.weight",),
    ) -> FakeCgroupFs:
        """A unified hierarchy whose root delegates ``controllers``; the supervisor's cgroup is
        ``own_path`` and holds ``pids_in_own``."""
        fake = cls(root)
        fake.cgroup_kill = cgroup_kill
        fake.swap_accounting = swap_accounting
        fake.io_files = io_files
        root.mkdir(parents=True, exist_ok=True)
        fake.mounts.append(_Mount(root, controllers, 2))
        fake._put(root / "cgroup.controllers", " ".join(controllers))
        fake._put(root / "cgroup.subtree_control", " ".join(controllers))
        fake._put(root / "cgroup.procs", "")
        fake._put(root / "cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n")
        own = fake._make_parents(root, own_path)
        for pid in pids_in_own:
            fake.write(own / "cgroup.procs", str(pid))
        fake.proc_lines.append(f"0::{own_path}")
        return fake

    def _make_parents(self, mount: Path, own_path: str) -> Path:
        """Create the supervisor's own cgroup; on v2 its ancestors delegate every controller."""
        current = mount
        parts = Path(own_path).parts[1:]
        for index, part in enumerate(parts):
            current = current / part
            self.mkdir(current)
            if self._mount_of(current).version == 2 and index < len(parts) - 1:
                self._put(current / "cgroup.subtree_control", (current / "cgroup.controllers").read_text())
        return current

    def proc_self_cgroup(self) -> str:
        """What /proc/self/cgroup would say for the supervisor."""
        return "".join(line + "\n" for line in self.proc_lines)

    # -- helpers for tests ----------------------------------------------------------------

    def _put(self, path: Path, text: str) -> None:
        path.write_text(text if text.endswith("\n") or not text else text + "\n")

    def poke(self, path: Path, text: str) -> None:
        """Set a file's content the way the kernel would update it (counters, usage)."""
        self._put(path, text)

    def spawn(self, pid: int, cgroup: Path) -> None:
        """A process appears in ``cgroup`` (e.g. forked there)."""
        self._attach(pid, cgroup)

    def send_signal(self, pid: int, sig: int) -> None:
        """Stands in for os.kill: SIGKILL makes the pid vanish from every cgroup."""
        if not self._all_pids().get(pid):
            raise ProcessLookupError(pid)
        self.signals.append((pid, sig))
        if sig == signal.SIGKILL:
            self._detach(pid)

    def pids_of(self, cgroup: Path) -> list[int]:
        return [int(x) for x in (cgroup / "cgroup.procs").read_text().split()]

    # -- the CgroupFs protocol ------------------------------------------------------------

    def exists(self, path: Path) -> bool:
        return path.exists()

    def listdir(self, path: Path) -> list[str]:
        return os.listdir(path)

    def mkdir(self, path: Path) -> None:
        mount = self._mount_of(path)
        if path.exists():
            raise FileExistsError(errno.EEXIST, "File exists", str(path))
        if not path.parent.is_dir():
            raise _oserror(errno.ENOENT, path)
        path.mkdir()
        if mount.version == 1:
            self._populate_v1(path, mount.controllers, parent=path.parent)
        else:
            self._populate_v2(path)

    def rmdir(self, path: Path) -> None:
        if not path.is_dir():
            raise _oserror(errno.ENOENT, path)
        mount = self._mount_of(path)
        if path == mount.path:
            raise _oserror(errno.EBUSY, path)
        if any(child.is_dir() for child in path.iterdir()) or self.pids_of(path):
            raise _oserror(errno.EBUSY, path)
        if self.busy_rmdirs > 0:
            self.busy_rmdirs -= 1
            raise _oserror(errno.EBUSY, path)
        for child in path.iterdir():
            child.unlink()
        path.rmdir()

    def read(self, path: Path) -> str:
        if not path.is_file():
            raise _oserror(errno.ENOENT, path)
        text = path.read_text()
        if path.name == "freezer.state" and text.strip() == "FROZEN" and self.freezing_reads > 0:
            self.freezing_reads -= 1
            return "FREEZING\n"
        return text

    def write(self, path: Path, value: str) -> None:
        if path.is_dir():
            raise _oserror(errno.EISDIR, path)
        if not path.is_file():
            raise _oserror(errno.ENOENT, path)
        self.writes.append((path, value))
        handler = getattr(self, "_write_" + path.name.replace(".", "_"), None)
        if handler is not None:
            handler(path, value.strip())
        else:
            self._put(path, value.strip())

    # -- kernel behaviour -----------------------------------------------------------------

    def _mount_of(self, path: Path) -> _Mount:
        best: _Mount | None = None
        for mount in self.mounts:
            inside = path == mount.path or mount.path in path.parents
            if inside and (best is None or len(mount.path.parts) > len(best.path.parts)):
                best = mount
        if best is None:
            raise _oserror(errno.EACCES, path)
        return best

    def _populate_v1(self, directory: Path, controllers: tuple[str, ...], parent: Path | None) -> None:
        def inherit(name: str, default: str) -> str:
            if parent is not None and (parent / name).exists():
                return (parent / name).read_text()
            return default

        files = {"cgroup.procs": "", "tasks": "", "notify_on_release": "0"}
        files["cgroup.clone_children"] = inherit("cgroup.clone_children", "0")
        if "cpu" in controllers:
            files |= {
                "cpu.shares": "1024",
                "cpu.cfs_quota_us": "-1",
                "cpu.cfs_period_us": "100000",
                "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0",
            }
        if "cpuacct" in controllers:
            files |= {
                "cpuacct.usage": "0",
                "cpuacct.usage_user": "0",
                "cpuacct.usage_sys": "0",
                "cpuacct.usage_percpu": "0 0 ",
                "cpuacct.stat": "user 0\nsystem 0",
            }
        if "cpuset" in controllers:
            if parent is None:
                files |= {"cpuset.cpus": self.cpus, "cpuset.mems": self.mems}
            elif files["cgroup.clone_children"].strip() == "1":
                files |= {
                    "cpuset.cpus": inherit("cpuset.cpus", ""),
                    "cpuset.mems": inherit("cpuset.mems", ""),
                }
            else:
                files |= {"cpuset.cpus": "", "cpuset.mems": ""}
        if "memory" in controllers:
            files |= {
                "memory.limit_in_bytes": str(V1_UNLIMITED),
                "memory.soft_limit_in_bytes": str(V1_UNLIMITED),
                "memory.swappiness": "60",
                "memory.usage_in_bytes": "0",
                "memory.max_usage_in_bytes": "0",
                "memory.stat": "cache 0\nrss 0\ninactive_file 0\ntotal_cache 0\ntotal_rss 0\ntotal_inactive_file 0",
                "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0",
            }
            if self.swap_accounting:
                files["memory.memsw.limit_in_bytes"] = str(V1_UNLIMITED)
        if "pids" in controllers and parent is not None:
            files |= {"pids.max": "max", "pids.current": "0"}
        if "blkio" in controllers:
            files |= {name: "100" for name in self.blkio_files}
        if "devices" in controllers:
            files |= {
                "devices.allow": "",
                "devices.deny": "",
                "devices.list": inherit("devices.list", "a *:* rwm"),
            }
        if "freezer" in controllers and parent is not None:
            files["freezer.state"] = "THAWED"
        for name, text in files.items():
            self._put(directory / name, text)

    def _populate_v2(self, directory: Path) -> None:
        enabled = (directory.parent / "cgroup.subtree_control").read_text().split()
        files = {
            "cgroup.procs": "",
            "cgroup.controllers": " ".join(enabled),
            "cgroup.subtree_control": "",
            "cgroup.events": "populated 0\nfrozen 0",
            "cgroup.freeze": "0",
            "cgroup.type": "domain",
            "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0",
        }
        if self.cgroup_kill:
            files["cgroup.kill"] = ""
        if "memory" in enabled:
            files |= {
                "memory.max": "max",
                "memory.low": "0",
                "memory.current": "0",
                "memory.oom.group": "0",
                "memory.stat": "anon 0\nfile 0\ninactive_file 0",
                "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0",
            }
            if self.swap_accounting:
                files["memory.swap.max"] = "max"
        if "cpu" in enabled:
            files |= {
                "cpu.max": "max 100000",
                "cpu.weight": "100",
                "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0",
            }
        if "pids" in enabled:
            files |= {"pids.max": "max", "pids.current": "0"}
        if "cpuset" in enabled:
            files |= {"cpuset.cpus": "", "cpuset.mems": "", "cpuset.cpus.effective": self.cpus}
        if "io" in enabled:
            files |= {name: "default 100" for name in self.io_files}
        for name, text in files.items():
            self._put(directory / name, text)

    def _all_pids(self) -> dict[int, set[Path]]:
        return {pid: dirs for pid, dirs in self._where.items() if dirs}

    def _set_members(self, cgroup: Path, pids: list[int]) -> None:
        text = "\n".join(str(p) for p in pids)
        self._put(cgroup / "cgroup.procs", text)
        if (cgroup / "tasks").exists():
            self._put(cgroup / "tasks", text)
        if (cgroup / "pids.current").exists():
            self._put(cgroup / "pids.current", str(len(pids)))
        events = cgroup / "cgroup.events"
        if events.exists():
            frozen = "frozen 1" in events.read_text()
            self._put(events, f"populated {int(bool(pids))}\nfrozen {int(frozen)}")

    def _detach(self, pid: int, mount: _Mount | None = None) -> None:
        for cgroup in list(self._where.get(pid, ())):
            if mount is not None and self._mount_of(cgroup) is not mount:
                continue
            self._where[pid].discard(cgroup)
            if cgroup.is_dir():
                self._set_members(cgroup, [p for p in self.pids_of(cgroup) if p != pid])

    def _attach(self, pid: int, cgroup: Path) -> None:
        self._detach(pid, self._mount_of(cgroup))
        self._where.setdefault(pid, set()).add(cgroup)
        self._set_members(cgroup, [*self.pids_of(cgroup), pid])

    def _write_cgroup_procs(self, path: Path, value: str) -> None:
        pid = self.self_pid if value == "0" else int(value)
        cgroup = path.parent
        mount = self._mount_of(cgroup)
        cpuset = cgroup / "cpuset.cpus"
        if mount.version == 1 and cpuset.exists() and not cpuset.read_text().strip():
            raise _oserror(errno.ENOSPC, path)
        delegates = (cgroup / "cgroup.subtree_control").exists() and (
            cgroup / "cgroup.subtree_control"
        ).read_text().strip()
        if mount.version == 2 and cgroup != mount.path and delegates:
            raise _oserror(errno.EBUSY, path)
        self._attach(pid, cgroup)

    _write_tasks = _write_cgroup_procs

    def _write_cgroup_subtree_control(self, path: Path, value: str) -> None:
        cgroup = path.parent
        available = (cgroup / "cgroup.controllers").read_text().split()
        enabled = path.read_text().split()
        if cgroup != self._mount_of(cgroup).path and self.pids_of(cgroup):
            raise _oserror(errno.EBUSY, path)
        for token in value.split():
            name = token[1:]
            if token[0] not in "+-" or name not in available:
                raise _oserror(errno.ENOENT, path)
            if token[0] == "+" and name not in enabled:
                enabled.append(name)
            elif token[0] == "-" and name in enabled:
                enabled.remove(name)
        self._put(path, " ".join(enabled))

    def _write_cgroup_freeze(self, path: Path, value: str) -> None:
        if value not in ("0", "1"):
            raise _oserror(errno.EINVAL, path)
        self._put(path, value)
        count = len(self.pids_of(path.parent))
        self._put(path.parent / "cgroup.events", f"populated {int(count > 0)}\nfrozen {value}")

    def _write_cgroup_kill(self, path: Path, value: str) -> None:
        if value != "1":
            raise _oserror(errno.EINVAL, path)
        for procs in [path.parent / "cgroup.procs", *path.parent.rglob("*/cgroup.procs")]:
            for pid in self.pids_of(procs.parent):
                self.signals.append((pid, signal.SIGKILL))
                self._detach(pid)

    def _write_freezer_state(self, path: Path, value: str) -> None:
        if value not in ("FROZEN", "THAWED"):
            raise _oserror(errno.EINVAL, path)
        self._put(path, value)

    def _write_devices_deny(self, path: Path, value: str) -> None:
        listing = path.parent / "devices.list"
        if value == "a":
            self._put(listing, "")
        else:
            lines = [line for line in listing.read_text().splitlines() if line != value]
            self._put(listing, "\n".join(lines))

    def _write_devices_allow(self, path: Path, value: str) -> None:
        listing = path.parent / "devices.list"
        parent_listing = path.parent.parent / "devices.list"
        if parent_listing.exists():
            parent_rules = parent_listing.read_text().splitlines()
            if "a *:* rwm" not in parent_rules and value not in parent_rules:
                raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        lines = listing.read_text().splitlines()
        lines.append("a *:* rwm" if value == "a" else value)
        self._put(listing, "\n".join(lines))

    def _int_value(self, path: Path, value: str, low: int, high: int, allow: tuple[str, ...] = ()) -> str:
        if value in allow:
            return value
        try:
            number = int(value)
        except ValueError:
            raise _oserror(errno.EINVAL, path) from None
        if not low <= number <= high:
            raise _oserror(errno.EINVAL, path)
        return value

    def _write_memory_limit_in_bytes(self, path: Path, value: str) -> None:
        limit = V1_UNLIMITED if value == "-1" else int(value)
        memsw = path.parent / "memory.memsw.limit_in_bytes"
        if memsw.exists() and limit > int(memsw.read_text()):
            raise _oserror(errno.EINVAL, path)
        self._put(path, str(limit))

    def _write_memory_memsw_limit_in_bytes(self, path: Path, value: str) -> None:
        limit = V1_UNLIMITED if value == "-1" else int(value)
        if limit < int((path.parent / "memory.limit_in_bytes").read_text()):
            raise _oserror(errno.EINVAL, path)
        self._put(path, str(limit))

    def _write_cpu_shares(self, path: Path, value: str) -> None:
        self._put(path, self._int_value(path, value, 2, 262144))

    def _write_cpu_cfs_quota_us(self, path: Path, value: str) -> None:
        if value != "-1":
            self._int_value(path, value, 1000, 1 << 40)
        self._put(path, value)

    def _write_cpu_cfs_period_us(self, path: Path, value: str) -> None:
        self._put(path, self._int_value(path, value, 1000, 1_000_000))

    def _write_pids_max(self, path: Path, value: str) -> None:
        self._put(path, self._int_value(path, value, 0, 1 << 22, allow=("max",)))

    def _write_cpu_weight(self, path: Path, value: str) -> None:
        self._put(path, self._int_value(path, value, 1, 10000))

    def _write_cpu_max(self, path: Path, value: str) -> None:
        parts = value.split()
        if len(parts) not in (1, 2):
            raise _oserror(errno.EINVAL, path)
        self._int_value(path, parts[0], 1000, 1 << 40, allow=("max",))
        period = parts[1] if len(parts) == 2 else path.read_text().split()[1]
        self._int_value(path, period, 1000, 1_000_000)
        self._put(path, f"{parts[0]} {period}")

    def _write_memory_max(self, path: Path, value: str) -> None:
        self._put(path, self._int_value(path, value, 0, 1 << 62, allow=("max",)))

    _write_memory_swap_max = _write_memory_max

    def _write_cpuset_cpus(self, path: Path, value: str) -> None:
        parent = path.parent.parent / "cpuset.cpus"
        allowed = _cpu_list(parent.read_text() if parent.exists() else self.cpus) or _cpu_list(self.cpus)
        if not _cpu_list(value) <= allowed:
            raise _oserror(errno.EINVAL, path)
        self._put(path, value)


def _cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


# -- in-memory driver ---------------------------------------------------------------------


@dataclass
class _FakeGroup:
    limits: CgroupLimits
    pids: set[int] = field(default_factory=set)
    frozen: bool = False
    oom_kills: int = 0
    stats: CgroupStats = field(default_factory=CgroupStats)


class RecordingCgroupDriver:
    """An in-memory ``CgroupDriver``: records every call in ``calls`` and keeps state that tests
    can steer (``groups[(project, id)].oom_kills += 1``)."""

    def __init__(self, version: int = 2, root: Path = Path("/fake/cgroup")) -> None:
        self._version = version
        self.root = root
        self.calls: list[tuple[object, ...]] = []
        self.groups: dict[tuple[str, str], _FakeGroup] = {}

    @property
    def version(self) -> int:
        return self._version

    def _handle(self, project: str, container_id: str) -> CgroupHandle:
        directory = self.root / "orc" / project / container_id
        return CgroupHandle(project, container_id, self._version, (("unified", directory),))

    def create(self, project: str, container_id: str, limits: CgroupLimits) -> CgroupHandle:
        limits.validate()
        self.calls.append(("create", project, container_id, limits))
        self.groups.setdefault((project, container_id), _FakeGroup(limits))
        return self._handle(project, container_id)

    def open(self, project: str, container_id: str) -> CgroupHandle | None:
        self.calls.append(("open", project, container_id))
        if (project, container_id) not in self.groups:
            return None
        return self._handle(project, container_id)

    def _group(self, handle: CgroupHandle) -> _FakeGroup:
        return self.groups[(handle.project, handle.container_id)]

    def update(self, handle: CgroupHandle, limits: CgroupLimits) -> tuple[str, ...]:
        limits.validate()
        self.calls.append(("update", handle.container_id, limits))
        self._group(handle).limits = limits
        return ()

    def add_process(self, handle: CgroupHandle, pid: int) -> None:
        self.calls.append(("add_process", handle.container_id, pid))
        self._group(handle).pids.add(pid)

    def pids(self, handle: CgroupHandle) -> list[int]:
        return sorted(self._group(handle).pids)

    def freeze(self, handle: CgroupHandle, timeout: float = 5.0) -> None:
        self.calls.append(("freeze", handle.container_id))
        self._group(handle).frozen = True

    def thaw(self, handle: CgroupHandle) -> None:
        self.calls.append(("thaw", handle.container_id))
        self._group(handle).frozen = False

    def is_frozen(self, handle: CgroupHandle) -> bool:
        return self._group(handle).frozen

    def stats(self, handle: CgroupHandle) -> CgroupStats:
        group = self._group(handle)
        return replace(group.stats, pids_current=len(group.pids), oom_kills=group.oom_kills)

    def oom_kill_count(self, handle: CgroupHandle) -> int:
        return self._group(handle).oom_kills

    def oom_killed(self, handle: CgroupHandle, since: int = 0) -> bool:
        return self._group(handle).oom_kills > since

    def kill(self, handle: CgroupHandle, sig: int = signal.SIGKILL, timeout: float = 5.0) -> None:
        self.calls.append(("kill", handle.container_id, sig))
        if sig == signal.SIGKILL:
            self._group(handle).pids.clear()

    def remove(self, handle: CgroupHandle, kill: bool = False, timeout: float = 2.0) -> None:
        self.calls.append(("remove", handle.container_id, kill))
        group = self.groups.get((handle.project, handle.container_id))
        if group is None:
            return
        if group.pids and not kill:
            raise ConflictError(f"cgroups: {handle.container_id} still has processes {sorted(group.pids)}")
        del self.groups[(handle.project, handle.container_id)]

    def remove_project(self, project: str) -> bool:
        self.calls.append(("remove_project", project))
        return not any(p == project for p, _ in self.groups)
