"""Importing images from disk: OCI layout directories, OCI layout tarballs, ``docker save`` tarballs.

Owned here: :func:`import_archive` (``image: oci:./dir:tag`` and friends, and ``orc image load``)
and :func:`archive_repo_tags`. The images driver calls it; content goes through the same store
calls as a registry pull (blobs verified by digest, layers unpacked into ``tmp/`` and renamed), so
an archive and a registry pull of the same image share layers.

* ``oci:DIR[:tag]`` reads ``DIR/index.json``; ``tag`` matches ``org.opencontainers.image.ref.name``
  (no tag: the only entry). Nested indexes pick the wanted platform.
* ``oci-archive:FILE[:tag]`` is the same layout inside a tar, read member by member (no extraction
  to disk, so a hostile archive cannot place files anywhere).
* ``docker-archive:FILE[:name]`` reads ``manifest.json`` (``Config``, ``Layers``, ``RepoTags``); a
  manifest for the uncompressed layers is synthesised so the image has a manifest digest.
"""

from __future__ import annotations

import contextlib
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from orchestrator.errors import NotFoundError, PermanentError
from orchestrator.runtime.images.config import parse_image_config
from orchestrator.runtime.images.manifest import (
    OCI_CONFIG,
    OCI_MANIFEST,
    REF_NAME_ANNOTATION,
    Descriptor,
    ImageIndex,
    ImageManifest,
    parse_manifest,
    select_platform,
)
from orchestrator.runtime.images.reference import ArchiveSource, Platform, parse_reference, validate_digest
from orchestrator.runtime.images.store import DigestMismatchError, Image, ImageStore, sha256_digest
from orchestrator.runtime.images.unpack import decompressed

MAX_METADATA = 64 << 20


class ArchiveError(PermanentError):
    """An image archive or layout that is missing, malformed or inconsistent."""


class _Blobs:
    """Read access to an archive's content by digest or member path."""

    def read(self, digest: str) -> bytes:
        raise NotImplementedError

    def open(self, digest: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        raise NotImplementedError

    def index(self) -> bytes:
        raise NotImplementedError


class _DirBlobs(_Blobs):
    def __init__(self, root: Path) -> None:
        self.root = root
        if not (root / "index.json").is_file():
            raise ArchiveError(f"{root} is not an OCI image layout (no index.json)")

    def _path(self, digest: str) -> Path:
        algorithm, _, hex_part = validate_digest(digest).partition(":")
        path = self.root / "blobs" / algorithm / hex_part
        if not path.is_file():
            raise ArchiveError(f"OCI layout {self.root}: blob {digest} is missing")
        return path

    def read(self, digest: str) -> bytes:
        data = self._path(digest).read_bytes()
        if sha256_digest(data) != digest:
            raise DigestMismatchError(f"OCI layout {self.root}: blob {digest} does not match its digest")
        return data

    @contextlib.contextmanager
    def open(self, digest: str) -> Iterator[IO[bytes]]:
        with open(self._path(digest), "rb") as f:
            yield f

    def index(self) -> bytes:
        return (self.root / "index.json").read_bytes()


class _TarBlobs(_Blobs):
    """An OCI layout or docker-save tarball, read by member name (never extracted)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.tar = tarfile.open(path, "r:*")  # noqa: SIM115
        except (OSError, tarfile.TarError) as exc:
            raise ArchiveError(f"cannot read image archive {path}: {exc}") from exc
        self.members = {
            m.name.lstrip("./") if m.name.startswith("./") else m.name: m for m in self.tar.getmembers()
        }

    def close(self) -> None:
        self.tar.close()

    def member(self, name: str) -> IO[bytes]:
        member = self.members.get(name)
        if member is None or not member.isreg():
            raise ArchiveError(f"image archive {self.path} has no file {name!r}")
        f = self.tar.extractfile(member)
        if f is None:
            raise ArchiveError(f"image archive {self.path}: {name!r} is not a file")
        return f

    def read_member(self, name: str) -> bytes:
        member = self.members.get(name)
        if member is not None and member.size > MAX_METADATA:
            raise ArchiveError(f"image archive {self.path}: {name!r} is too large for metadata")
        return self.member(name).read()

    def _name(self, digest: str) -> str:
        algorithm, _, hex_part = validate_digest(digest).partition(":")
        return f"blobs/{algorithm}/{hex_part}"

    def read(self, digest: str) -> bytes:
        data = self.read_member(self._name(digest))
        if sha256_digest(data) != digest:
            raise DigestMismatchError(f"image archive {self.path}: blob {digest} does not match its digest")
        return data

    @contextlib.contextmanager
    def open(self, digest: str) -> Iterator[IO[bytes]]:
        yield self.member(self._name(digest))

    def index(self) -> bytes:
        return self.read_member("index.json")


@dataclass(frozen=True)
class _Resolved:
    top_digest: str
    manifest_bytes: bytes
    manifest_digest: str
    manifest: ImageManifest


def _resolve_oci(blobs: _Blobs, tag: str | None, platform: Platform, where: str) -> _Resolved:
    try:
        index_doc = json.loads(blobs.index())
    except ValueError as exc:
        raise ArchiveError(f"{where}: index.json is not valid JSON") from exc
    entries = [Descriptor.from_json(d, f"{where} index.json") for d in index_doc.get("manifests") or []]
    if tag is not None:
        entries = [d for d in entries if d.annotations.get(REF_NAME_ANNOTATION) == tag]
        if not entries:
            raise NotFoundError(f"{where}: no image tagged {tag!r}")
    elif len({d.digest for d in entries}) > 1:
        platform_entries = [
            d
            for d in entries
            if d.platform and platform.matches(d.platform.os, d.platform.architecture, d.platform.variant)
        ]
        if not platform_entries:
            names = sorted(d.annotations.get(REF_NAME_ANNOTATION, d.digest) for d in entries)
            raise ArchiveError(f"{where} holds several images; name one with :TAG ({', '.join(names)})")
        entries = platform_entries[:1]
    if not entries:
        raise ArchiveError(f"{where}: the layout's index is empty")
    top = entries[0]
    data = blobs.read(top.digest)
    parsed = parse_manifest(data, top.media_type)
    digest = top.digest
    while isinstance(parsed, ImageIndex):
        chosen = select_platform(parsed, platform)
        digest = chosen.digest
        data = blobs.read(digest)
        parsed = parse_manifest(data, chosen.media_type)
    return _Resolved(top.digest, data, digest, parsed)


def _import(
    store: ImageStore,
    resolved: _Resolved,
    config_bytes: bytes,
    open_layer: Callable[[int, Descriptor], contextlib.AbstractContextManager[IO[bytes]]],
) -> str:
    config_digest = store.put_blob(config_bytes, resolved.manifest.config.digest)
    config = parse_image_config(config_bytes)
    if len(config.diff_ids) != len(resolved.manifest.layers):
        raise ArchiveError(
            f"manifest lists {len(resolved.manifest.layers)} layers but the config {len(config.diff_ids)} diff-ids"
        )
    for i, (descriptor, diff_id) in enumerate(zip(resolved.manifest.layers, config.diff_ids, strict=True)):

        @contextlib.contextmanager
        def stream(i: int = i, descriptor: Descriptor = descriptor) -> Iterator[IO[bytes]]:
            with open_layer(i, descriptor) as raw, decompressed(raw) as plain:
                yield plain

        store.add_layer(stream, diff_id)
    store.put_blob(resolved.manifest_bytes, resolved.manifest_digest)
    platform = f"{config.os}/{config.architecture}" + (f"/{config.variant}" if config.variant else "")
    return store.put_image(resolved.manifest_digest, config_digest, platform)


def import_archive(
    store: ImageStore,
    source: ArchiveSource,
    platform: Platform,
    *,
    name: str | None = None,
    name_by_source: bool = True,
) -> Image:
    """Import the image ``source`` names into ``store`` and name it ``name`` (default ``str(source)``).

    A docker-archive also gets its ``RepoTags`` as names, as ``docker load`` does; with
    ``name_by_source=False`` (``orc image load``) those are its only names.
    """
    path = Path(source.path)
    if not path.exists():
        raise NotFoundError(f"{source.transport}: {path} does not exist")
    extra_names: list[str] = []
    if source.transport == "oci":
        blobs = _DirBlobs(path)
        resolved = _resolve_oci(blobs, source.tag, platform, str(source))
        image_id = _import(
            store, resolved, blobs.read(resolved.manifest.config.digest), lambda _i, d: blobs.open(d.digest)
        )
        top = resolved.top_digest
    else:
        tar_blobs = _TarBlobs(path)
        try:
            if source.transport == "oci-archive" or (
                "index.json" in tar_blobs.members and "manifest.json" not in tar_blobs.members
            ):
                resolved = _resolve_oci(tar_blobs, source.tag, platform, str(source))
                config_bytes = tar_blobs.read(resolved.manifest.config.digest)
                image_id = _import(store, resolved, config_bytes, lambda _i, d: tar_blobs.open(d.digest))
                top = resolved.top_digest
            else:
                image_id, extra_names, top = _import_docker_archive(store, tar_blobs, source)
        finally:
            tar_blobs.close()
    if name_by_source or name:
        store.tag(name or str(source), image_id, top, pulled=True, platform=str(platform))
    for tag in extra_names:
        store.tag(tag, image_id, None, pulled=False)
    image = store.image(image_id)
    if image is None:
        raise ArchiveError(f"{source}: image vanished from the store while being imported")
    return image


def _import_docker_archive(
    store: ImageStore, blobs: _TarBlobs, source: ArchiveSource
) -> tuple[str, list[str], str]:
    try:
        entries: list[dict[str, Any]] = json.loads(blobs.read_member("manifest.json"))
    except ValueError as exc:
        raise ArchiveError(f"{source}: manifest.json is not valid JSON") from exc
    if not isinstance(entries, list) or not entries:
        raise ArchiveError(f"{source}: manifest.json lists no images")
    chosen = entries[0]
    if source.tag is not None:
        matching = [
            e for e in entries if source.tag in {str(parse_reference(t)) for t in e.get("RepoTags") or []}
        ]
        if not matching:
            raise NotFoundError(f"{source}: no image tagged {source.tag}")
        chosen = matching[0]
    elif len(entries) > 1:
        raise ArchiveError(f"{source} holds {len(entries)} images; name one with :NAME")
    config_bytes = blobs.read_member(str(chosen["Config"]))
    config = parse_image_config(config_bytes)
    layer_names = [str(n) for n in chosen.get("Layers") or []]
    if len(layer_names) != len(config.diff_ids):
        raise ArchiveError(f"{source}: {len(layer_names)} layers but {len(config.diff_ids)} diff-ids")
    layers = tuple(
        Descriptor(
            "application/vnd.oci.image.layer.v1.tar",
            diff_id,
            blobs.members[n].size if n in blobs.members else 0,
        )
        for n, diff_id in zip(layer_names, config.diff_ids, strict=True)
    )
    config_descriptor = Descriptor(OCI_CONFIG, sha256_digest(config_bytes), len(config_bytes))
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": config_descriptor.digest,
            "size": config_descriptor.size,
        },
        "layers": [{"mediaType": d.media_type, "digest": d.digest, "size": d.size} for d in layers],
    }
    manifest_bytes = json.dumps(manifest_doc, separators=(",", ":")).encode()
    resolved = _Resolved(
        sha256_digest(manifest_bytes),
        manifest_bytes,
        sha256_digest(manifest_bytes),
        ImageManifest(OCI_MANIFEST, config_descriptor, layers),
    )
    image_id = _import(
        store, resolved, config_bytes, lambda i, _d: contextlib.nullcontext(blobs.member(layer_names[i]))
    )
    tags = [str(parse_reference(t)) for t in chosen.get("RepoTags") or []]
    return image_id, tags, resolved.top_digest


def archive_repo_tags(path: Path) -> list[str]:
    """The RepoTags a docker-archive declares (for listings before import)."""
    blobs = _TarBlobs(path)
    try:
        entries = json.loads(blobs.read_member("manifest.json"))
        return [str(parse_reference(t)) for e in entries for t in e.get("RepoTags") or []]
    finally:
        blobs.close()
