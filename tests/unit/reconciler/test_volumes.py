"""Copy-up: an empty volume gets the image's content at its target, merged across layers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestrator.reconciler.volumes import copy_up

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts (mknod) and trusted.* xattrs need root")


def layer(root: Path, files: dict[str, str | None]) -> str:
    """A layer directory: a str value is a file's text, None a whiteout."""
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        else:
            target.write_text(text)
    return str(root)


def tree(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): p.read_text() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_merged_like_overlayfs(tmp_path: Path) -> None:
    bottom = layer(tmp_path / "l0", {"srv/www/a": "a0", "srv/www/b": "b0", "srv/www/sub/c": "c0"})
    top = layer(tmp_path / "l1", {"srv/www/a": "a1", "srv/www/b": None, "srv/www/new": "n1"})
    volume = tmp_path / "volume"
    volume.mkdir()
    assert copy_up([top, bottom], "/srv/www", volume)  # top-most first
    assert tree(volume) == {"a": "a1", "new": "n1", "sub/c": "c0"}


def test_opaque_directory_and_whited_out_parent(tmp_path: Path) -> None:
    bottom = layer(tmp_path / "l0", {"data/old": "o", "data/keep/x": "x"})
    middle = layer(tmp_path / "l1", {"data/mid": "m"})
    os.setxattr(tmp_path / "l1" / "data", "trusted.overlay.opaque", b"y")
    volume = tmp_path / "v1"
    volume.mkdir()
    assert copy_up([middle, bottom], "/data", volume)
    assert tree(volume) == {"mid": "m"}
    gone = layer(tmp_path / "l2", {"data": None})
    volume = tmp_path / "v2"
    volume.mkdir()
    assert not copy_up([gone, middle, bottom], "/data", volume)
    assert tree(volume) == {}


def test_keeps_owner_mode_and_links_and_leaves_full_volumes_alone(tmp_path: Path) -> None:
    base = tmp_path / "l0"
    layer(base, {"etc/app/conf": "c"})
    os.chown(base / "etc" / "app" / "conf", 7, 8)
    os.chmod(base / "etc" / "app", 0o750)
    os.symlink("conf", base / "etc" / "app" / "link")
    volume = tmp_path / "volume"
    volume.mkdir()
    assert copy_up([str(base)], "/etc/app", volume)
    info = (volume / "conf").stat()
    assert (info.st_uid, info.st_gid) == (7, 8)
    assert stat.S_IMODE(volume.stat().st_mode) == 0o750
    assert os.readlink(volume / "link") == "conf"
    (base / "etc" / "app" / "conf").write_text("changed")
    assert not copy_up([str(base)], "/etc/app", volume)  # not empty: untouched
    assert (volume / "conf").read_text() == "c"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not copy_up([str(base)], "/nowhere", empty)
    assert not copy_up([str(base)], "/../etc", empty)


def test_anonymous_volumes_are_named_by_target_and_image_volumes_fill_the_gaps() -> None:
    from orchestrator.reconciler.volumes import anonymous_key, image_volume_targets

    assert anonymous_key("/data") == anonymous_key("/data/") == anonymous_key("/x/../data")
    assert anonymous_key("/data") != anonymous_key("/var/data")
    # the image's VOLUME paths the service does not mount itself (any kind of mount)
    assert image_volume_targets(["/var/lib/db", "/logs/", "/cache", "relative"], ["/logs", "/cache"]) == [
        "/var/lib/db"
    ]
