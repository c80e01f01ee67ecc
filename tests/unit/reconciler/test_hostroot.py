"""x-orc rootfs: host — the reference, the skeleton and the spec rewrite (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.model import Service, freeze
from orchestrator.reconciler import hostroot
from orchestrator.reconciler.desired import image_reference
from orchestrator.runtime.process.spec import (
    BindMount,
    ContainerSpec,
    DirectoryRootfs,
    OverlayRootfs,
    ProcessSpec,
    TmpfsMount,
)


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A fake merged-/usr host: /bin and /lib are symlinks, /usr /etc /lib64 real, no /opt."""
    root = tmp_path / "host"
    for name in ("usr/bin", "usr/lib", "etc", "lib64"):
        (root / name).mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "lib").symlink_to("usr/lib")
    return root


def _spec(mounts: tuple[BindMount, ...] = (), cwd: str = "/") -> ContainerSpec:
    return ContainerSpec(
        id="p-api-1",
        rootfs=OverlayRootfs(("rootfs:host:/srv/p",), "/c/upper", "/c/work"),
        process=ProcessSpec(args=("python3", "app.py"), cwd=cwd),
        mounts=mounts,
    )


def test_the_reference_names_the_project_directory() -> None:
    service = Service(name="api", image="host", extensions=freeze({"x-orc": {"rootfs": "host"}}))
    reference = image_reference(service, "/srv/p/./")
    assert reference == "rootfs:host:/srv/p"
    assert hostroot.is_host_reference(reference)
    assert hostroot.project_directory(reference) == "/srv/p"
    assert image_reference(
        Service(name="a", image="x", extensions=freeze({"x-orc": {"rootfs": "dir"}})), "/srv/p"
    ) == ("rootfs:/srv/p/dir")


def test_skeleton_copies_symlinks_and_makes_mount_points(tmp_path: Path, host: Path) -> None:
    skeleton = hostroot.ensure_skeleton(tmp_path / "skel", host)
    assert (skeleton / "bin").is_symlink() and str((skeleton / "bin").readlink()) == "usr/bin"
    assert (skeleton / "lib").is_symlink()
    assert (skeleton / "usr").is_dir() and not (skeleton / "usr").is_symlink()
    assert not (skeleton / "opt").exists()
    assert (skeleton / "tmp").stat().st_mode & 0o1777 == 0o1777
    assert list(tmp_path.glob("*.partial")) == []
    # a second call keeps the existing one
    (skeleton / "marker").touch()
    assert hostroot.ensure_skeleton(tmp_path / "skel", host) == skeleton
    assert (skeleton / "marker").exists()


def test_host_mounts_bind_real_directories_read_only(host: Path) -> None:
    mounts = hostroot.host_mounts(host)
    binds = [m for m in mounts if isinstance(m, BindMount)]
    assert [(m.source, m.target, m.read_only) for m in binds] == [
        (str(host / "usr"), "/usr", True),
        (str(host / "lib64"), "/lib64", True),
        (str(host / "etc"), "/etc", True),
    ]
    assert [m.target for m in mounts if isinstance(m, TmpfsMount)] == ["/tmp", "/run"]


def test_adapt_rewrites_root_mounts_and_working_dir(tmp_path: Path, host: Path) -> None:
    own = BindMount("/data", "/data")
    spec = hostroot.adapt(_spec((own,)), "rootfs:host:/srv/p", tmp_path / "skel", None, host)
    assert isinstance(spec.rootfs, OverlayRootfs)
    assert spec.rootfs.lower_dirs == (str(tmp_path / "skel"),)
    assert spec.rootfs.upper_dir == "/c/upper"
    assert spec.process.cwd == "/srv/p"
    project = BindMount("/srv/p", "/srv/p")
    assert spec.mounts[-2:] == (project, own)  # the service's own mounts come last
    assert spec.mounts[0] == BindMount(str(host / "usr"), "/usr", read_only=True)


def test_adapt_keeps_the_services_working_dir(tmp_path: Path, host: Path) -> None:
    spec = hostroot.adapt(_spec(cwd="/srv/p/api"), "rootfs:host:/srv/p", tmp_path / "s", "/srv/p/api", host)
    assert spec.process.cwd == "/srv/p/api"


def test_adapt_refuses_a_directory_root(tmp_path: Path) -> None:
    spec = ContainerSpec(id="x", rootfs=DirectoryRootfs("/r"), process=ProcessSpec(args=("true",)))
    with pytest.raises(TypeError):
        hostroot.adapt(spec, "rootfs:host:/p", tmp_path / "s", None)
