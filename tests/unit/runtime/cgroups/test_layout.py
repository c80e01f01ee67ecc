"""Detecting v1, hybrid and v2 layouts from a root directory and /proc/self/cgroup."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import PermanentError
from orchestrator.runtime.cgroups.fake import FakeCgroupFs
from orchestrator.runtime.cgroups.fs import HostCgroupFs
from orchestrator.runtime.cgroups.layout import detect_layout, parse_proc_cgroup

THIS_MACHINE = """9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/18cf
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
"""


def test_parse_proc_cgroup_keeps_ids_controllers_and_paths() -> None:
    lines = parse_proc_cgroup("4:memory:/a/b\n2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/user.slice\n")
    assert [(line.hierarchy_id, line.controllers, line.path) for line in lines] == [
        (4, ("memory",), "/a/b"),
        (2, ("cpu", "cpuacct"), "/"),
        (1, ("name=systemd",), "/x"),
        (0, (), "/user.slice"),
    ]
    with pytest.raises(PermanentError):
        parse_proc_cgroup("garbage")


def test_separately_mounted_v1_controllers_like_this_machine(tmp_path: Path) -> None:
    names = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")
    fake = FakeCgroupFs.v1(
        tmp_path, {n: (n,) for n in names}, own_paths={"memory": "/process_api/18cf"}, hybrid=True
    )
    layout = detect_layout(tmp_path, THIS_MACHINE, fake)
    assert layout.version == 1
    assert layout.hybrid
    assert sorted(c for h in layout.hierarchies for c in h.controllers) == sorted(names)
    memory = layout.hierarchy_for("memory")
    assert memory is not None
    assert memory.own_dir == tmp_path / "memory" / "process_api" / "18cf"
    cpu = layout.hierarchy_for("cpu")
    assert cpu is not None and cpu.own_dir == tmp_path / "cpu"


def test_co_mounted_controllers_share_one_hierarchy(v1_fake: FakeCgroupFs) -> None:
    layout = detect_layout(v1_fake.root, v1_fake.proc_self_cgroup(), v1_fake)
    cpu, cpuacct = layout.hierarchy_for("cpu"), layout.hierarchy_for("cpuacct")
    assert cpu is cpuacct
    assert cpu is not None and cpu.mount == v1_fake.root / "cpu,cpuacct"


def test_co_mounted_hierarchy_found_through_a_single_controller_name(tmp_path: Path) -> None:
    fake = FakeCgroupFs.v1(tmp_path, {"cpu": ("cpu", "cpuacct")})
    layout = detect_layout(tmp_path, "1:cpu,cpuacct:/\n", fake)
    assert layout.hierarchies[0].mount == tmp_path / "cpu"
    assert layout.hierarchies[0].controllers == ("cpu", "cpuacct")


def test_unified_layout_lists_the_controllers_of_our_cgroup(v2_fake: FakeCgroupFs) -> None:
    layout = detect_layout(v2_fake.root, v2_fake.proc_self_cgroup(), v2_fake)
    assert layout.version == 2
    (unified,) = layout.hierarchies
    assert unified.own_dir == v2_fake.root / "user.slice" / "session-1.scope"
    assert set(unified.controllers) == {"cpu", "cpuset", "memory", "pids", "io"}


def test_v2_supervisor_leaf_counts_as_its_parent(v2_fake: FakeCgroupFs) -> None:
    layout = detect_layout(v2_fake.root, "0::/user.slice/session-1.scope/orc-supervisor\n", v2_fake)
    assert layout.hierarchies[0].own_path == "/user.slice/session-1.scope"


def test_hybrid_without_v1_controllers_uses_the_unified_mount(tmp_path: Path) -> None:
    fake = FakeCgroupFs.v2(tmp_path / "unified", controllers=("memory", "pids"))
    layout = detect_layout(tmp_path, "1:name=systemd:/\n0::/\n", fake)
    assert layout.version == 2
    assert layout.hierarchies[0].mount == tmp_path / "unified"


def test_missing_own_cgroup_says_so(tmp_path: Path) -> None:
    fake = FakeCgroupFs.v1(tmp_path, {"memory": ("memory",)})
    with pytest.raises(PermanentError, match="not found"):
        detect_layout(tmp_path, "1:memory:/elsewhere\n", fake)


def test_nothing_usable_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(PermanentError):
        detect_layout(tmp_path, "1:name=systemd:/\n", HostCgroupFs())
    with pytest.raises(PermanentError):
        detect_layout(tmp_path, "0::/\n", HostCgroupFs())
