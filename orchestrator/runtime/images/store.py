"""The content store: blobs by digest, unpacked layers shared by diff-id, images and their names.

Owned here: :class:`ImageStore`, :class:`Image`, :class:`LayerRecord`. The puller and the archive
importer put content in; the images driver and the CLI read, tag, remove and prune. Layout under
the images root (default ``/var/lib/orc/images``)::

    blobs/sha256/<hex>     manifests, indexes and configs (layer blobs are unpacked as they stream in)
    l/<short>/             one unpacked layer, usable as an overlay lower dir (short path on purpose:
                           overlay's mount options must fit in a page, so 100+ layers still mount)
    layers/<hex>.json      diff-id → directory, size
    images/<hex>.json      one image (id = config digest): manifest digest, diff-ids, platform
    refs.json              name → image id, repo digest, last pull time
    holds/<hex>/<holder>   containers using an image (remove refuses while any exist)
    tmp/                   downloads and unpacks in progress

Everything becomes visible by ``rename``: a half-unpacked layer stays in ``tmp/`` (named with its
writer's pid) and is swept by the next store opened after that process is gone. Layer reference counts are derived from the image records,
so they cannot drift. Metadata changes hold an ``flock`` on ``lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from orchestrator.errors import ConflictError, NotFoundError, PermanentError
from orchestrator.runtime.images.config import ImageConfig, parse_image_config
from orchestrator.runtime.images.reference import validate_digest
from orchestrator.runtime.images.unpack import UnpackOptions, UnpackResult, unpack_layer

DEFAULT_IMAGES_ROOT = Path("/var/lib/orc/images")


class DigestMismatchError(PermanentError):
    """Content whose digest (or diff-id) is not the one it was fetched or declared as."""


def _hex(digest: str) -> str:
    algorithm, _, hex_part = validate_digest(digest).partition(":")
    return hex_part if algorithm == "sha256" else f"{algorithm}-{hex_part}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes, tmp_dir: Path | None = None) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``rename`` (readers see old or new)."""
    tmp = (tmp_dir or path.parent) / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class LayerRecord:
    diff_id: str
    directory: Path
    size: int


@dataclass(frozen=True)
class Image:
    """An image ready to run: its config and its layer directories, uppermost first (overlay order)."""

    id: str
    manifest_digest: str
    config_digest: str
    config: ImageConfig
    diff_ids: tuple[str, ...]
    lower_dirs: tuple[Path, ...]
    size: int
    platform: str
    references: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    created: str | None = None


@dataclass(frozen=True)
class RefRecord:
    """What a name points at: image id, the digest the name resolved to, when it was pulled."""

    name: str
    image: str
    digest: str | None
    pulled_at: float | None
    platform: str


class ImageStore:
    """Content-addressed storage for images under one root (see the module docstring for layout)."""

    def __init__(
        self,
        root: Path = DEFAULT_IMAGES_ROOT,
        *,
        unpack_options: UnpackOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.clock = clock
        self.unpack_options = unpack_options or UnpackOptions(privileged=os.geteuid() == 0)
        try:
            for sub in ("blobs/sha256", "l", "layers", "images", "holds", "tmp"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            self._sweep_tmp()
        except OSError as exc:
            raise PermanentError(f"cannot open the image store at {root}: {exc.strerror or exc}") from exc

    # --- locking and tmp ----------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's metadata lock (an flock, so it also excludes other orc processes)."""
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _sweep_tmp(self) -> None:
        """Remove leftovers of interrupted writes: entries whose writer process is gone.

        Work entries are named ``<hint><pid>-<random>``; others (atomic-write temporaries) are
        removed when older than a minute.
        """
        now = time.time()
        for entry in (self.root / "tmp").iterdir():
            pid = _writer_pid(entry.name)
            try:
                stale = not _pid_alive(pid) if pid is not None else now - entry.lstat().st_mtime > 60
                if not stale:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
            except FileNotFoundError:
                continue

    def tmp_path(self, hint: str = "") -> Path:
        """A fresh path in ``tmp/`` carrying this process's pid (so a sweep spares it while we live)."""
        return self.root / "tmp" / f"{hint}{os.getpid()}-{uuid.uuid4().hex[:12]}"

    # --- blobs ----------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / _hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"blob {digest} is not in the store") from exc

    def put_blob(self, data: bytes, expected: str | None = None) -> str:
        """Store small content (manifest, config) after checking it hashes to ``expected``."""
        digest = sha256_digest(data)
        if expected is not None and expected != digest:
            raise DigestMismatchError(f"content should have digest {expected} but has {digest}")
        path = self.blob_path(digest)
        if not path.exists():
            atomic_write(path, data, self.root / "tmp")
        return digest

    def adopt_blob_file(self, tmp_file: Path, digest: str) -> Path:
        """Move a verified, fully written file from ``tmp/`` into the blob store."""
        path = self.blob_path(digest)
        os.replace(tmp_file, path)
        return path

    # --- layers ---------------------------------------------------------------------------------

    def _layer_meta(self, diff_id: str) -> Path:
        return self.root / "layers" / f"{_hex(diff_id)}.json"

    def layer(self, diff_id: str) -> LayerRecord | None:
        """The unpacked layer with this diff-id, if present and complete."""
        try:
            doc = json.loads(self._layer_meta(diff_id).read_text())
        except FileNotFoundError:
            return None
        directory = self.root / "l" / doc["dir"]
        if not directory.is_dir():
            return None
        return LayerRecord(diff_id, directory, int(doc.get("size", 0)))

    def _short_dir_name(self, diff_id: str) -> str:
        hex_part = _hex(diff_id).replace("-", "")
        for length in range(12, len(hex_part) + 1):
            name = hex_part[:length]
            if not (self.root / "l" / name).exists():
                return name
            # a leftover of a crash between rename and record, for this very layer: reuse the name
            owner = self._dir_owner(name)
            if owner is None or owner == diff_id:
                shutil.rmtree(self.root / "l" / name, ignore_errors=True)
                return name
        raise ConflictError(f"no free layer directory name for {diff_id}")

    def _dir_owner(self, name: str) -> str | None:
        for meta in (self.root / "layers").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                doc = json.loads(meta.read_text())
                if doc["dir"] == name:
                    return str(doc["diff_id"])
        return None

    def add_layer(
        self,
        open_stream: Callable[[], contextlib.AbstractContextManager[IO[bytes]]],
        expected_diff_id: str | None,
    ) -> LayerRecord:
        """Unpack a layer (``open_stream`` yields its uncompressed tar) unless already present.

        The tar is unpacked into ``tmp/`` and renamed into ``l/`` only if its diff-id is the
        expected one; on any error nothing becomes visible.
        """
        if expected_diff_id is not None:
            existing = self.layer(expected_diff_id)
            if existing is not None:
                return existing
        work = self.tmp_path("layer-")
        work.mkdir(mode=0o755)
        try:
            with open_stream() as stream:
                result: UnpackResult = unpack_layer(stream, work, self.unpack_options)
            if expected_diff_id is not None and result.diff_id != expected_diff_id:
                raise DigestMismatchError(
                    f"layer unpacked to diff-id {result.diff_id} but the image config says {expected_diff_id}"
                )
            with self.locked():
                existing = self.layer(result.diff_id)
                if existing is not None:
                    return existing
                name = self._short_dir_name(result.diff_id)
                os.rename(work, self.root / "l" / name)
                doc = {"diff_id": result.diff_id, "dir": name, "size": result.size, "created": self.clock()}
                atomic_write(self._layer_meta(result.diff_id), json.dumps(doc).encode(), self.root / "tmp")
                return LayerRecord(result.diff_id, self.root / "l" / name, result.size)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)

    # --- images and names -----------------------------------------------------------------------

    def _image_meta(self, image_id: str) -> Path:
        return self.root / "images" / f"{_hex(image_id)}.json"

    def put_image(self, manifest_digest: str, config_digest: str, platform: str) -> str:
        """Record an image whose config blob and every layer are already in the store."""
        config = parse_image_config(self.read_blob(config_digest))
        missing = [d for d in config.diff_ids if self.layer(d) is None]
        if missing:
            raise NotFoundError(f"image {config_digest}: layers missing from the store: {', '.join(missing)}")
        size = sum(layer.size for d in config.diff_ids if (layer := self.layer(d)) is not None)
        doc = {
            "id": config_digest,
            "manifest": manifest_digest,
            "config": config_digest,
            "diff_ids": list(config.diff_ids),
            "platform": platform,
            "size": size,
            "created": config.created,
        }
        with self.locked():
            atomic_write(self._image_meta(config_digest), json.dumps(doc).encode(), self.root / "tmp")
        return config_digest

    def _refs(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.root / "refs.json").read_text())
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def _write_refs(self, refs: dict[str, dict[str, Any]]) -> None:
        atomic_write(
            self.root / "refs.json", json.dumps(refs, sort_keys=True, indent=1).encode(), self.root / "tmp"
        )

    def tag(self, name: str, image_id: str, digest: str | None, *, pulled: bool, platform: str = "") -> None:
        """Point ``name`` at ``image_id``; ``pulled`` records now as its last pull time."""
        if not self._image_meta(image_id).exists():
            raise NotFoundError(f"image {image_id} is not in the store")
        with self.locked():
            refs = self._refs()
            old = refs.get(name, {})
            refs[name] = {
                "image": image_id,
                "digest": digest,
                "pulled_at": self.clock() if pulled else old.get("pulled_at"),
                "platform": platform,
            }
            self._write_refs(refs)

    def ref(self, name: str) -> RefRecord | None:
        entry = self._refs().get(name)
        if entry is None:
            return None
        return RefRecord(
            name, entry["image"], entry.get("digest"), entry.get("pulled_at"), entry.get("platform", "")
        )

    def refs(self) -> list[RefRecord]:
        return [
            RefRecord(n, e["image"], e.get("digest"), e.get("pulled_at"), e.get("platform", ""))
            for n, e in sorted(self._refs().items())
        ]

    def image(self, image_id: str) -> Image | None:
        """The image with this id (config digest), or None; its layers must all be present."""
        try:
            doc = json.loads(self._image_meta(image_id).read_text())
        except (FileNotFoundError, PermanentError):
            return None
        layers = [self.layer(d) for d in doc["diff_ids"]]
        if any(layer is None for layer in layers):
            return None
        names = [r for r in self.refs() if r.image == image_id]
        return Image(
            id=doc["id"],
            manifest_digest=doc["manifest"],
            config_digest=doc["config"],
            config=parse_image_config(self.read_blob(doc["config"])),
            diff_ids=tuple(doc["diff_ids"]),
            lower_dirs=tuple(layer.directory for layer in reversed(layers) if layer is not None),
            size=int(doc.get("size", 0)),
            platform=doc.get("platform", ""),
            references=tuple(r.name for r in names),
            repo_digests=tuple(sorted({f"{repository_of(r.name)}@{r.digest}" for r in names if r.digest})),
            created=doc.get("created"),
        )

    def lookup(self, name: str) -> Image | None:
        """Resolve a stored name (normalised reference text) or an image id / unique id prefix."""
        ref = self.ref(name)
        if ref is not None:
            return self.image(ref.image)
        candidate = name if name.startswith("sha256:") else f"sha256:{name}"
        hex_prefix = candidate.partition(":")[2]
        if len(hex_prefix) >= 4 and all(c in "0123456789abcdef" for c in hex_prefix):
            matches = [p.stem for p in (self.root / "images").glob(f"{hex_prefix}*.json")]
            if len(matches) == 1:
                return self.image(f"sha256:{matches[0]}")
            if len(matches) > 1:
                raise ConflictError(f"image id prefix {name!r} is ambiguous")
        return None

    def images(self) -> list[Image]:
        out = []
        for meta in sorted((self.root / "images").glob("*.json")):
            image = self.image(f"sha256:{meta.stem}")
            if image is not None:
                out.append(image)
        return out

    # --- holds, removal, garbage collection ------------------------------------------------------

    def hold(self, image_id: str, holder: str) -> None:
        """Mark ``image_id`` as used by ``holder`` (a container id); remove refuses meanwhile."""
        d = self.root / "holds" / _hex(image_id)
        d.mkdir(parents=True, exist_ok=True)
        (d / holder).touch()

    def release(self, image_id: str, holder: str) -> None:
        d = self.root / "holds" / _hex(image_id)
        (d / holder).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            d.rmdir()

    def holders(self, image_id: str) -> list[str]:
        d = self.root / "holds" / _hex(image_id)
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def untag(self, name: str) -> RefRecord:
        with self.locked():
            refs = self._refs()
            entry = refs.pop(name, None)
            if entry is None:
                raise NotFoundError(f"no such image: {name}")
            self._write_refs(refs)
        return RefRecord(
            name, entry["image"], entry.get("digest"), entry.get("pulled_at"), entry.get("platform", "")
        )

    def delete_image(self, image_id: str, *, force: bool = False) -> list[str]:
        """Delete an image record and its names, then collect unreferenced layers and blobs.

        Refuses while containers hold it unless ``force``. Returns the names it untagged.
        """
        if not self._image_meta(image_id).exists():
            raise NotFoundError(f"no such image: {image_id}")
        held = self.holders(image_id)
        if held and not force:
            raise ConflictError(
                f"image {image_id[:19]} is in use by {len(held)} container(s): {', '.join(held[:3])}"
            )
        with self.locked():
            refs = self._refs()
            removed = sorted(n for n, e in refs.items() if e["image"] == image_id)
            for name in removed:
                del refs[name]
            self._write_refs(refs)
            self._image_meta(image_id).unlink(missing_ok=True)
        self.collect_garbage()
        return removed

    def layer_refcounts(self) -> dict[str, int]:
        """diff-id → number of images using it (0 for layers no image uses)."""
        counts: dict[str, int] = {}
        for meta in (self.root / "layers").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                counts[json.loads(meta.read_text())["diff_id"]] = 0
        for meta in (self.root / "images").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                for d in json.loads(meta.read_text())["diff_ids"]:
                    counts[d] = counts.get(d, 0) + 1
        return counts

    def collect_garbage(self) -> tuple[int, int]:
        """Remove layers no image uses and blobs no image or name refers to. Returns (layers, bytes)."""
        freed_layers = 0
        freed_bytes = 0
        with self.locked():
            images = []
            for meta in (self.root / "images").glob("*.json"):
                with contextlib.suppress(OSError, ValueError):
                    images.append(json.loads(meta.read_text()))
            used_layers = {d for doc in images for d in doc["diff_ids"]}
            used_blobs = {doc["config"] for doc in images} | {doc["manifest"] for doc in images}
            used_blobs |= {e["digest"] for e in self._refs().values() if e.get("digest")}
            known_dirs = set()
            for meta in list((self.root / "layers").glob("*.json")):
                try:
                    doc = json.loads(meta.read_text())
                except (OSError, ValueError):
                    continue
                if doc["diff_id"] in used_layers:
                    known_dirs.add(doc["dir"])
                    continue
                meta.unlink(missing_ok=True)
                freed_bytes += int(doc.get("size", 0))
                freed_layers += 1
                shutil.rmtree(self.root / "l" / doc["dir"], ignore_errors=True)
            for d in (self.root / "l").iterdir():
                if d.name not in known_dirs:
                    shutil.rmtree(d, ignore_errors=True)
            used_hex = {_hex(b) for b in used_blobs}
            for blob in (self.root / "blobs" / "sha256").iterdir():
                if blob.name not in used_hex:
                    freed_bytes += blob.stat().st_size
                    blob.unlink(missing_ok=True)
        return freed_layers, freed_bytes


def _writer_pid(name: str) -> int | None:
    head = name.rpartition("-")[0]
    digits = head.rpartition("-")[2] if "-" in head else head
    return int(digits) if digits.isdigit() else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def repository_of(name: str) -> str:
    """``docker.io/library/redis:7@sha256:…`` → ``docker.io/library/redis``."""
    base = name.split("@")[0]
    colon = base.rfind(":")
    return base[:colon] if colon > base.rfind("/") else base
