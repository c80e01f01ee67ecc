"""The content store (atomic layers, names, refcounts, holds, GC) and archive imports, without root."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.runtime.images.archive import ArchiveError, import_archive
from orchestrator.runtime.images.reference import ArchiveSource, Platform
from orchestrator.runtime.images.store import DigestMismatchError, ImageStore
from orchestrator.runtime.images.unpack import LayerFormatError, UnpackOptions
from tests.integration.images.support import (
    Entry,
    ImageSpec,
    image_blobs,
    make_layer,
    tar_of_entries,
    write_layout,
)

AMD64 = Platform("linux", "amd64")


def new_store(tmp_path: Path) -> ImageStore:
    return ImageStore(
        tmp_path / "images",
        unpack_options=UnpackOptions(privileged=False, opaque_xattr="user.overlay.opaque"),
    )


def opener(data: bytes):  # type: ignore[no-untyped-def]
    @contextlib.contextmanager
    def open_stream() -> Iterator[IO[bytes]]:
        yield io.BytesIO(data)

    return open_stream


def visible(store: ImageStore) -> tuple[list[str], list[str], list[str]]:
    return (
        sorted(p.name for p in (store.root / "l").iterdir()),
        sorted(p.name for p in (store.root / "layers").iterdir()),
        sorted(p.name for p in (store.root / "tmp").iterdir()),
    )


def test_layers_are_unpacked_once_under_short_names(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    layer = make_layer(tar_of_entries([Entry("f", data=b"1")]), "none")
    first = store.add_layer(opener(layer.tar), layer.diff_id)
    assert first.directory.name == layer.diff_id.split(":")[1][:12]
    assert (first.directory / "f").read_bytes() == b"1"
    mtime = first.directory.stat().st_mtime_ns
    calls = []

    @contextlib.contextmanager
    def counting() -> Iterator[IO[bytes]]:
        calls.append(1)
        yield io.BytesIO(layer.tar)

    assert store.add_layer(counting, layer.diff_id) == first
    assert calls == [] and first.directory.stat().st_mtime_ns == mtime
    assert store.add_layer(opener(layer.tar), None) == first  # unknown diff-id: unpacked, then deduplicated
    assert visible(store)[2] == []


def test_failed_or_mismatched_layers_never_become_visible(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    layer = make_layer(tar_of_entries([Entry("f", data=b"1")]), "none")
    with pytest.raises(DigestMismatchError, match="diff-id"):
        store.add_layer(opener(layer.tar), "sha256:" + "0" * 64)
    with pytest.raises(LayerFormatError):
        store.add_layer(opener(layer.tar[:700]), layer.diff_id)
    assert visible(store) == ([], [], [])


def test_interrupted_leftovers_are_swept_and_orphan_dirs_reused(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    gone_pid = _exited_pid()
    stale = store.root / "tmp" / f"layer-{gone_pid}-abc"
    stale.mkdir()
    live = store.root / "tmp" / f"layer-{os.getpid()}-def"
    live.mkdir()
    old = time.time() - 3600
    os.utime(live, (old, old))
    old_tmp = store.root / "tmp" / ".refs.json.1234.tmp"
    old_tmp.write_bytes(b"x")
    os.utime(old_tmp, (old, old))
    fresh = store.root / "tmp" / ".refs.json.5678.tmp"
    fresh.write_bytes(b"in progress")
    layer = make_layer(tar_of_entries([Entry("f", data=b"1")]), "none")
    orphan = store.root / "l" / layer.diff_id.split(":")[1][:12]
    orphan.mkdir()  # a crash between rename and record
    store = new_store(tmp_path)
    assert not stale.exists() and not old_tmp.exists()
    assert live.exists() and fresh.exists()  # our own work, and young temporaries, are spared
    record = store.add_layer(opener(layer.tar), layer.diff_id)
    assert record.directory == orphan and (orphan / "f").exists()


def _exited_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def put_image(store: ImageStore, spec: ImageSpec, name: str) -> str:
    manifest, config, _ = image_blobs(spec)
    for layer in spec.layers:
        store.add_layer(opener(layer.tar), layer.diff_id)
    store.put_blob(config)
    digest = store.put_blob(manifest)
    image_id = store.put_image(digest, store.put_blob(config), "linux/amd64")
    store.tag(name, image_id, digest, pulled=True)
    return image_id


def test_names_refcounts_holds_and_garbage_collection(tmp_path: Path) -> None:
    now = [100.0]
    store = ImageStore(
        tmp_path / "images", unpack_options=UnpackOptions(False, "user.o"), clock=lambda: now[0]
    )
    base = make_layer(tar_of_entries([Entry("base", data=b"b")]), "none")
    top_a = make_layer(tar_of_entries([Entry("a", data=b"a")]), "none")
    top_b = make_layer(tar_of_entries([Entry("b", data=b"b")]), "none")
    a = put_image(store, ImageSpec([base, top_a]), "r/a:1")
    b = put_image(store, ImageSpec([base, top_b]), "r/b:1")
    assert store.layer_refcounts() == {base.diff_id: 2, top_a.diff_id: 1, top_b.diff_id: 1}

    image = store.lookup("r/a:1")
    assert image is not None and image.id == a
    assert [p.name for p in image.lower_dirs] == [top_a.diff_id[7:19], base.diff_id[7:19]]  # uppermost first
    assert store.ref("r/a:1").pulled_at == 100.0  # type: ignore[union-attr]
    assert store.lookup(a[7:19]) == image and store.lookup(a) == image
    assert image.repo_digests[0].startswith("r/a@sha256:")

    store.hold(b, "ctr1")
    with pytest.raises(ConflictError, match="in use by 1 container"):
        store.delete_image(b)
    store.release(b, "ctr1")

    assert store.delete_image(a) == ["r/a:1"]
    assert store.lookup("r/a:1") is None
    assert store.layer_refcounts() == {base.diff_id: 1, top_b.diff_id: 1}
    assert store.lookup("r/b:1") is not None and all(p.is_dir() for p in store.lookup("r/b:1").lower_dirs)  # type: ignore[union-attr]
    store.delete_image(b)
    assert visible(store) == ([], [], [])
    assert list((store.root / "blobs" / "sha256").iterdir()) == []
    with pytest.raises(NotFoundError):
        store.delete_image(b)


def test_put_image_refuses_missing_layers(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    layer = make_layer(tar_of_entries([Entry("f", data=b"1")]), "none")
    manifest, config, _ = image_blobs(ImageSpec([layer]))
    with pytest.raises(NotFoundError, match="layers missing"):
        store.put_image(store.put_blob(manifest), store.put_blob(config), "linux/amd64")


# --- archives ---------------------------------------------------------------------------------


def two_layer_spec() -> ImageSpec:
    return ImageSpec(
        [
            make_layer(
                tar_of_entries([Entry("bin/", tarfile.DIRTYPE, mode=0o755), Entry("bin/tool", data=b"t")]),
                "gzip",
            ),
            make_layer(tar_of_entries([Entry("bin/.wh.tool"), Entry("etc/conf", data=b"c")]), "zstd"),
        ],
        config={"Cmd": ["/bin/tool"]},
    )


def test_import_oci_layout_directory(tmp_path: Path) -> None:
    spec = two_layer_spec()
    top = write_layout(tmp_path / "layout", [spec], "v1")
    store = new_store(tmp_path)
    image = import_archive(store, ArchiveSource("oci", str(tmp_path / "layout"), "v1"), AMD64)
    assert image.config.cmd == ("/bin/tool",)
    assert image.references == (f"oci:{tmp_path / 'layout'}:v1",)
    assert store.ref(image.references[0]).digest == top  # type: ignore[union-attr]
    assert (image.lower_dirs[0] / "etc/conf").read_bytes() == b"c"
    with pytest.raises(NotFoundError, match="no image tagged 'v2'"):
        import_archive(store, ArchiveSource("oci", str(tmp_path / "layout"), "v2"), AMD64)
    # untagged: the only image there is
    assert import_archive(store, ArchiveSource("oci", str(tmp_path / "layout")), AMD64).id == image.id


def test_import_oci_layout_index_by_platform_and_corrupt_blob(tmp_path: Path) -> None:
    base = make_layer(tar_of_entries([Entry("f", data=b"base")]), "gzip")
    write_layout(tmp_path / "multi", [ImageSpec([base]), ImageSpec([base], architecture="arm64")], "v1")
    store = new_store(tmp_path)
    arm = import_archive(
        store, ArchiveSource("oci", str(tmp_path / "multi"), "v1"), Platform("linux", "arm64")
    )
    assert arm.platform == "linux/arm64"
    blob = tmp_path / "multi" / "blobs" / "sha256" / base.digest.split(":")[1]
    blob.write_bytes(blob.read_bytes()[:-10])
    store2 = ImageStore(tmp_path / "images2", unpack_options=UnpackOptions(False, "user.o"))
    with pytest.raises((LayerFormatError, DigestMismatchError)):
        import_archive(store2, ArchiveSource("oci", str(tmp_path / "multi"), "v1"), AMD64)
    assert visible(store2)[:2] == ([], [])


def tar_dir(src: Path, dest: Path) -> None:
    with tarfile.open(dest, "w") as tar:
        for p in sorted(src.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(src)), recursive=False)


def test_import_oci_archive(tmp_path: Path) -> None:
    spec = two_layer_spec()
    write_layout(tmp_path / "layout", [spec], "v1")
    tar_dir(tmp_path / "layout", tmp_path / "image.tar")
    store = new_store(tmp_path)
    image = import_archive(store, ArchiveSource("oci-archive", str(tmp_path / "image.tar"), "v1"), AMD64)
    assert image.diff_ids == tuple(layer.diff_id for layer in spec.layers)


def test_import_docker_archive(tmp_path: Path) -> None:
    spec = two_layer_spec()
    _, config, _ = image_blobs(spec)
    src = tmp_path / "save"
    src.mkdir()
    (src / "cfg.json").write_bytes(config)
    names = []
    for i, layer in enumerate(spec.layers):
        (src / f"l{i}").mkdir()
        (src / f"l{i}" / "layer.tar").write_bytes(layer.tar)
        names.append(f"l{i}/layer.tar")
    (src / "manifest.json").write_text(
        json.dumps([{"Config": "cfg.json", "RepoTags": ["tool:1"], "Layers": names}])
    )
    tar_dir(src, tmp_path / "save.tar")
    store = new_store(tmp_path)
    image = import_archive(store, ArchiveSource("docker-archive", str(tmp_path / "save.tar")), AMD64)
    assert set(image.references) == {f"docker-archive:{tmp_path / 'save.tar'}", "docker.io/library/tool:1"}
    assert image.config.cmd == ("/bin/tool",)
    assert os.path.exists(image.lower_dirs[0] / "etc/conf")
    with pytest.raises(NotFoundError, match="no image tagged"):
        import_archive(
            store, ArchiveSource("docker-archive", str(tmp_path / "save.tar"), "docker.io/library/x:1"), AMD64
        )
    with pytest.raises(NotFoundError, match="does not exist"):
        import_archive(store, ArchiveSource("docker-archive", str(tmp_path / "nope.tar")), AMD64)
    (tmp_path / "junk.tar").write_bytes(b"junk" * 100)
    with pytest.raises(ArchiveError):
        import_archive(store, ArchiveSource("docker-archive", str(tmp_path / "junk.tar")), AMD64)


def test_unusable_root_is_a_clear_error(tmp_path: Path) -> None:
    from orchestrator.errors import PermanentError

    (tmp_path / "file").write_text("x")
    with pytest.raises(PermanentError, match=r"cannot open the image store at .*/file/images"):
        ImageStore(tmp_path / "file" / "images")
