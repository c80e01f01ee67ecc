"""OCI and Docker schema-2 manifests and indexes: parsing, media types and platform selection.

Owned here: :class:`Descriptor`, :class:`ImageManifest`, :class:`ImageIndex`, :func:`parse_manifest`
and :func:`select_platform`. Pure; the registry puller and the archive importer call them with the
bytes they fetched (whose digest they already verified).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import NotFoundError, PermanentError
from orchestrator.runtime.images.reference import Platform, validate_digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"


class ManifestError(PermanentError):
    """A manifest or index that is not valid JSON of a kind orc understands."""


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content: media type, digest and size (and, in an index, a platform)."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any, where: str) -> Descriptor:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: descriptor is not an object")
        try:
            digest = validate_digest(str(data["digest"]))
            size = int(data["size"])
        except (KeyError, ValueError, TypeError, PermanentError) as exc:
            raise ManifestError(f"{where}: bad descriptor: {exc}") from exc
        if size < 0:
            raise ManifestError(f"{where}: negative size")
        platform = None
        raw = data.get("platform")
        if isinstance(raw, dict) and raw.get("os") and raw.get("architecture"):
            platform = Platform(str(raw["os"]), str(raw["architecture"]), raw.get("variant") or None)
        annotations = data.get("annotations") or {}
        return cls(
            media_type=str(data.get("mediaType", "")),
            digest=digest,
            size=size,
            platform=platform,
            annotations={str(k): str(v) for k, v in annotations.items()},
            urls=tuple(str(u) for u in data.get("urls") or ()),
        )


@dataclass(frozen=True)
class ImageManifest:
    """One image: its config blob and its layers, base first."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageIndex:
    """A multi-platform index (OCI) or manifest list (Docker)."""

    media_type: str
    manifests: tuple[Descriptor, ...]


def _sniff_media_type(doc: dict[str, Any]) -> str:
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc and "config" in doc:
        return OCI_MANIFEST
    if "fsLayers" in doc:
        return DOCKER_SCHEMA1[0]
    return ""


def parse_manifest(data: bytes, media_type: str | None = None) -> ImageManifest | ImageIndex:
    """Parse manifest or index bytes; ``media_type`` is the Content-Type if the registry sent one."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    declared = doc.get("mediaType")
    kind = str(declared or "").strip() or (media_type or "").split(";")[0].strip() or _sniff_media_type(doc)
    if kind in ("application/json", "text/plain"):
        kind = _sniff_media_type(doc)
    if kind in DOCKER_SCHEMA1 or (doc.get("schemaVersion") == 1):
        raise ManifestError(
            "Docker schema-1 manifests are not supported (push the image again with a newer tool)"
        )
    if kind in INDEX_TYPES:
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise ManifestError("index has no manifests list")
        return ImageIndex(
            kind, tuple(Descriptor.from_json(d, f"manifests[{i}]") for i, d in enumerate(items))
        )
    if kind in MANIFEST_TYPES:
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ManifestError("manifest has no layers list")
        return ImageManifest(
            kind,
            Descriptor.from_json(doc.get("config"), "config"),
            tuple(Descriptor.from_json(d, f"layers[{i}]") for i, d in enumerate(layers)),
        )
    raise ManifestError(f"unsupported manifest media type {kind!r}")


def select_platform(index: ImageIndex, wanted: Platform) -> Descriptor:
    """The first index entry for ``wanted``; attestation entries (``unknown/unknown``) never match."""
    candidates = [
        d
        for d in index.manifests
        if d.platform is not None
        and d.media_type not in INDEX_TYPES
        and wanted.matches(d.platform.os, d.platform.architecture, d.platform.variant)
    ]
    if not candidates:
        offered = sorted({str(d.platform) for d in index.manifests if d.platform is not None})
        raise NotFoundError(
            f"no image for platform {wanted} in the index (offered: {', '.join(offered) or 'none'})"
        )
    return candidates[0]


def layer_compression(descriptor: Descriptor) -> str:
    """``gzip``, ``zstd``, ``none`` from the media type, or ``unknown`` (the unpacker sniffs then)."""
    return LAYER_TYPES.get(descriptor.media_type, "unknown")
