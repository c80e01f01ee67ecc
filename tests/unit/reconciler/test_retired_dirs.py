"""A removed container's directory is renamed aside at once and deleted afterwards
(``reconciler.adapter``): what a killed supervisor left aside, the project's next one deletes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from orchestrator.reconciler.adapter import _RETIRED_PREFIX, KernelRuntime


def test_the_next_supervisor_deletes_what_its_project_left_aside_and_nothing_else(tmp_path: Path) -> None:
    containers = tmp_path / "lib" / "containers"
    ours = containers / f"{_RETIRED_PREFIX}demo.demo-web-1.0a1b2c3d"
    theirs = containers / f"{_RETIRED_PREFIX}other.other-web-1.0a1b2c3d"
    live = containers / "demo-web-1"
    for directory in (ours / "upper" / "etc", theirs / "upper", live / "upper"):
        directory.mkdir(parents=True)
    (ours / "upper" / "etc" / "motd").write_text("left by a killed supervisor")
    runtime = SimpleNamespace(lib_root=tmp_path / "lib", project="demo")
    KernelRuntime._sweep_retired(runtime)  # type: ignore[arg-type]
    assert sorted(p.name for p in containers.iterdir()) == sorted([theirs.name, live.name])


def test_nothing_to_sweep_without_a_containers_directory(tmp_path: Path) -> None:
    KernelRuntime._sweep_retired(SimpleNamespace(lib_root=tmp_path / "lib", project="demo"))  # type: ignore[arg-type]
