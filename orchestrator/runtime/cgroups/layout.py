"""Which cgroup layout this host has and where the supervisor sits in it.

``detect_layout`` reads the root (default ``/sys/fs/cgroup``) through a ``CgroupFs`` and the text
of ``/proc/self/cgroup`` (both injected) and answers: v1 (one hierarchy per controller or per
co-mounted group such as ``cpu,cpuacct``), v2 (unified), or hybrid. Hybrid hosts are driven as
v1: their v2 mount usually holds no controllers. Called by ``driver.open_driver``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from orchestrator.errors import PermanentError
from orchestrator.runtime.cgroups.fs import CgroupFs

V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer")
V2_CONTROLLERS = ("cpu", "cpuset", "memory", "pids", "io")

SUPERVISOR_LEAF = "orc-supervisor"
"""On v2 the supervisor moves itself into this leaf below its own cgroup (no internal processes)."""


@dataclass(frozen=True)
class ProcCgroupLine:
    """One line of /proc/<pid>/cgroup: ``4:memory:/process_api/x`` or ``0::/user.slice``."""

    hierarchy_id: int
    controllers: tuple[str, ...]
    path: str


def parse_proc_cgroup(text: str) -> list[ProcCgroupLine]:
    lines = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        parts = raw.split(":", 2)
        if len(parts) != 3:
            raise PermanentError(f"cgroups: cannot parse /proc/self/cgroup line {raw!r}")
        hid, controllers, path = parts
        lines.append(
            ProcCgroupLine(
                hierarchy_id=int(hid),
                controllers=tuple(c for c in controllers.split(",") if c),
                path=path,
            )
        )
    return lines


@dataclass(frozen=True)
class Hierarchy:
    """One mounted hierarchy and the supervisor's own cgroup in it."""

    controllers: tuple[str, ...]
    mount: Path
    own_path: str

    @property
    def own_dir(self) -> Path:
        relative = PurePosixPath(self.own_path).relative_to("/")
        return self.mount / relative if str(relative) != "." else self.mount


@dataclass(frozen=True)
class Layout:
    """``version`` 1 lists one Hierarchy per mounted hierarchy that holds a controller orc uses
    (co-mounted controllers share one); version 2 lists exactly one, the unified tree, with the
    controllers available in the supervisor's cgroup."""

    version: int
    hierarchies: tuple[Hierarchy, ...]
    hybrid: bool = False

    def hierarchy_for(self, controller: str) -> Hierarchy | None:
        for hierarchy in self.hierarchies:
            if controller in hierarchy.controllers:
                return hierarchy
        return None


def detect_layout(root: Path, proc_self_cgroup: str, fs: CgroupFs) -> Layout:
    lines = parse_proc_cgroup(proc_self_cgroup)
    unified_line = next((line for line in lines if line.hierarchy_id == 0), None)
    v1 = _v1_hierarchies(root, lines, fs)
    if v1:
        return Layout(version=1, hierarchies=tuple(v1), hybrid=unified_line is not None)
    if unified_line is None:
        raise PermanentError("cgroups: /proc/self/cgroup lists no usable hierarchy")
    for mount in (root, root / "unified"):
        if fs.exists(mount / "cgroup.controllers"):
            own_path = unified_line.path
            if PurePosixPath(own_path).name == SUPERVISOR_LEAF:
                own_path = str(PurePosixPath(own_path).parent)
            own_dir = Hierarchy((), mount, own_path).own_dir
            if not fs.exists(own_dir):
                raise PermanentError(
                    f"cgroups: own cgroup {own_path} not found under {mount} "
                    "(is /sys/fs/cgroup mounted from another cgroup namespace?)"
                )
            available = fs.read(own_dir / "cgroup.controllers").split()
            controllers = tuple(c for c in V2_CONTROLLERS if c in available)
            return Layout(version=2, hierarchies=(Hierarchy(controllers, mount, own_path),))
    raise PermanentError(f"cgroups: no cgroup v1 controllers and no cgroup2 mount under {root}")


def _v1_hierarchies(root: Path, lines: list[ProcCgroupLine], fs: CgroupFs) -> list[Hierarchy]:
    found = []
    for line in lines:
        wanted = tuple(c for c in line.controllers if c in V1_CONTROLLERS)
        if line.hierarchy_id == 0 or not wanted:
            continue
        candidates = [",".join(line.controllers), *wanted]
        mount = next(
            (root / name for name in candidates if fs.exists(root / name / "cgroup.procs")),
            None,
        )
        if mount is None:
            continue
        hierarchy = Hierarchy(wanted, mount, line.path)
        if not fs.exists(hierarchy.own_dir):
            raise PermanentError(
                f"cgroups: own {','.join(wanted)} cgroup {line.path} not found under {mount} "
                "(is /sys/fs/cgroup mounted from another cgroup namespace?)"
            )
        found.append(hierarchy)
    return found
