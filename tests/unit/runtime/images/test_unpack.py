"""Layer unpacking without root: overlay whiteouts, links, duplicates and hostile layers contained."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard

from orchestrator.runtime.images.unpack import (
    HostileLayerError,
    LayerFormatError,
    UnpackOptions,
    decompressed,
    unpack_layer,
)
from tests.integration.images.support import Entry, tar_of_entries

OPTS = UnpackOptions(privileged=False, opaque_xattr="user.overlay.opaque")
DIR, SYM, LNK, FIFO, CHR = (
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
    tarfile.FIFOTYPE,
    tarfile.CHRTYPE,
)


def unpack(tmp_path: Path, entries: list[Entry], options: UnpackOptions = OPTS) -> Path:
    dest = tmp_path / "layer"
    dest.mkdir(parents=True)
    unpack_layer(io.BytesIO(tar_of_entries(entries)), dest, options)
    return dest


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the layer that must stay untouched."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret").write_text("keep\n")
    return d


def snapshot(d: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(d.rglob("*")):
        out[str(p.relative_to(d))] = p.read_bytes() if p.is_file() and not p.is_symlink() else "special"
    return out


def test_regular_layer_and_diff_id(tmp_path: Path) -> None:
    entries = [
        Entry("etc/", DIR, mode=0o755),
        Entry("etc/motd", data=b"hi\n", mode=0o640),
        Entry("bin/sh", SYM, linkname="/bin/busybox"),
        Entry("bin/busybox", data=b"\x7fELF", mode=0o755),
        Entry("bin/ash", LNK, linkname="bin/busybox"),
        Entry("run/pipe", FIFO, mode=0o600),
        Entry("dev/null", CHR, mode=0o666, devmajor=1, devminor=3),
        Entry("xattr", data=b"x", pax={"SCHILY.xattr.user.test": "value"}),
    ]
    tar_bytes = tar_of_entries(entries)
    dest = tmp_path / "layer"
    dest.mkdir()
    result = unpack_layer(io.BytesIO(tar_bytes), dest, OPTS)
    assert result.diff_id == "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    assert result.size == 3 + 4 + 1
    assert (dest / "etc/motd").read_text() == "hi\n"
    assert stat.S_IMODE((dest / "etc/motd").stat().st_mode) == 0o640
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"  # absolute targets stay as written
    assert (dest / "bin/ash").stat().st_ino == (dest / "bin/busybox").stat().st_ino
    assert stat.S_ISFIFO((dest / "run/pipe").lstat().st_mode)
    assert not (dest / "dev/null").exists()  # device nodes need privilege
    assert os.getxattr(dest / "xattr", "user.test") == b"value"
    assert (dest / "etc/motd").stat().st_mtime == 1_700_000_000


def test_whiteouts_and_opaque_dirs_in_overlay_form(tmp_path: Path) -> None:
    dest = unpack(
        tmp_path,
        [
            Entry("gone.txt", data=b"x"),
            Entry(".wh.gone.txt"),
            Entry("etc/.wh.passwd"),
            Entry("var/cache/", DIR, mode=0o755),
            Entry("var/cache/.wh..wh..opq"),
            Entry("var/cache/new", data=b"n"),
            Entry(".wh..wh.plnk/123"),
        ],
    )
    for path in (dest / "gone.txt", dest / "etc/passwd"):
        st = path.lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert os.getxattr(dest / "var/cache", "user.overlay.opaque") == b"y"
    assert (dest / "var/cache/new").read_text() == "n"
    assert not (dest / ".wh..wh.plnk").exists()


def test_duplicate_entries_replace_earlier_ones(tmp_path: Path, outside: Path) -> None:
    dest = unpack(
        tmp_path,
        [
            Entry("a", data=b"first"),
            Entry("a", data=b"second"),
            Entry("d/", DIR),
            Entry("d/x", data=b"x"),
            Entry("d", data=b"now a file"),
            Entry("f", data=b"file"),
            Entry("f/", DIR, mode=0o700),
            Entry("link", SYM, linkname=str(outside)),
            Entry("link/", DIR, mode=0o755),
            Entry("link/inside", data=b"contained"),
        ],
    )
    assert (dest / "a").read_bytes() == b"second"
    assert (dest / "d").read_bytes() == b"now a file"
    assert (dest / "f").is_dir()
    assert (dest / "link").is_dir() and not (dest / "link").is_symlink()
    assert (dest / "link/inside").read_bytes() == b"contained"
    assert snapshot(outside) == {"secret": b"keep\n"}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([Entry("../escape", data=b"x")], "escapes the layer"),
        ([Entry("a/../../escape", data=b"x")], "escapes the layer"),
        ([Entry("evil", SYM, linkname="OUTSIDE"), Entry("evil/pwned", data=b"x")], "passes through"),
        ([Entry("up", SYM, linkname="../.."), Entry("up/outside/pwned", data=b"x")], "passes through"),
        ([Entry("evil", SYM, linkname="OUTSIDE"), Entry("evil/sub/", DIR)], "passes through"),
        ([Entry("evil", SYM, linkname="OUTSIDE"), Entry("evil/.wh.secret")], "passes through"),
        ([Entry("evil", SYM, linkname="OUTSIDE"), Entry("h", LNK, linkname="evil/secret")], "passes through"),
        ([Entry("h", LNK, linkname="../outside/secret")], "escapes the layer"),
        ([Entry("h", LNK, linkname="OUTSIDE/secret")], "not in this layer"),
        ([Entry("d/", DIR), Entry("h", LNK, linkname="d")], "points at a directory"),
        ([Entry(".wh..")], "bad whiteout"),
    ],
)
@pytest.mark.parametrize(
    "privileged",
    [
        False,
        pytest.param(
            True, marks=pytest.mark.skipif(os.geteuid() != 0, reason="privileged unpack needs root")
        ),
    ],
)
def test_hostile_layers_write_nothing_outside(
    tmp_path: Path, outside: Path, entries: list[Entry], message: str, privileged: bool
) -> None:
    for e in entries:
        e.linkname = e.linkname.replace("OUTSIDE", str(outside))
    before = snapshot(tmp_path)
    options = UnpackOptions(privileged=True) if privileged else OPTS
    with pytest.raises(HostileLayerError, match=message):
        unpack(tmp_path, entries, options)
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("layer")} == {
        k: v for k, v in before.items() if not k.startswith("layer")
    }
    assert snapshot(outside) == {"secret": b"keep\n"}


def test_absolute_member_names_are_kept_inside(tmp_path: Path) -> None:
    dest = unpack(tmp_path, [Entry("/etc/abs", data=b"in")])
    assert (dest / "etc/abs").read_bytes() == b"in"


def test_tar_bombs_hit_the_limits(tmp_path: Path) -> None:
    with pytest.raises(HostileLayerError, match="more than 1000 bytes"):
        unpack(
            tmp_path,
            [Entry(f"f{i}", data=b"x" * 400) for i in range(3)],
            UnpackOptions(False, "user.o", max_bytes=1000),
        )
    with pytest.raises(HostileLayerError, match="more than 5 entries"):
        unpack(
            tmp_path / "2", [Entry(f"f{i}") for i in range(6)], UnpackOptions(False, "user.o", max_entries=5)
        )


def test_corrupt_streams(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    with pytest.raises(LayerFormatError):
        unpack_layer(io.BytesIO(b"this is not a tar archive" * 40), dest, OPTS)
    tar_bytes = tar_of_entries([Entry("big", data=os.urandom(20000))])
    truncated = gzip.compress(tar_bytes)[:5000]
    dest2 = tmp_path / "d2"
    dest2.mkdir()
    with pytest.raises(LayerFormatError), decompressed(io.BytesIO(truncated)) as stream:
        unpack_layer(stream, dest2, OPTS)


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_decompression_is_sniffed(tmp_path: Path, kind: str) -> None:
    tar_bytes = tar_of_entries([Entry("f", data=b"content")])
    blob = {
        "gzip": gzip.compress(tar_bytes),
        "zstd": zstandard.ZstdCompressor().compress(tar_bytes),
        "none": tar_bytes,
    }[kind]
    dest = tmp_path / "d"
    dest.mkdir()
    with decompressed(io.BytesIO(blob)) as stream:
        result = unpack_layer(stream, dest, OPTS)
    assert result.diff_id == "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    assert (dest / "f").read_bytes() == b"content"
