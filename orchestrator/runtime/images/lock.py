"""The lock file: every service image pinned to a manifest digest (and per-platform digests).

Owned here: :class:`LockFile`, :func:`render_lock` / :func:`parse_lock` (``compose.lock``, JSON,
stable order), :func:`check_lock` (pure: file and lock agree?), :func:`locked_source` (what ``up
--locked`` pulls) and :func:`create_lock` / :func:`resolve_image_digests`, which ask an
:class:`~orchestrator.runtime.images.driver.ImageDriver` for the digests. ``orc lock`` writes the
file beside the first compose file; ``orc up --locked`` (reconciler) checks it before pulling.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import PermanentError, Problem, StackError
from orchestrator.runtime.images.reference import ArchiveSource, parse_image_source

if TYPE_CHECKING:
    from orchestrator.runtime.images.driver import ImageDriver

LOCK_FILE_NAME = "compose.lock"
LOCK_VERSION = 1


@dataclass(frozen=True)
class LockedImage:
    """One service's image: as written, normalised, the digest it resolved to, per-platform digests."""

    image: str
    reference: str
    digest: str
    platforms: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class LockFile:
    services: dict[str, LockedImage] = field(default_factory=dict, hash=False)
    version: int = LOCK_VERSION


def lock_path(first_compose_file: Path) -> Path:
    """``compose.lock`` beside the first compose file."""
    return first_compose_file.parent / LOCK_FILE_NAME


def render_lock(lock: LockFile) -> str:
    doc = {
        "version": lock.version,
        "services": {
            name: {
                "image": item.image,
                "reference": item.reference,
                "digest": item.digest,
                "platforms": dict(sorted(item.platforms.items())),
            }
            for name, item in sorted(lock.services.items())
        },
    }
    return json.dumps(doc, indent=2) + "\n"


def parse_lock(text: str, file: str = LOCK_FILE_NAME) -> LockFile:
    """Parse lock file text; every problem is reported with the file and the dotted path."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise StackError(Problem(f"not valid JSON: {exc}", file=file)) from exc
    if not isinstance(doc, dict):
        raise StackError(Problem("the lock file must be a JSON object", file=file))
    if doc.get("version") != LOCK_VERSION:
        raise StackError(
            Problem(f"unsupported lock file version {doc.get('version')!r}", file=file, path="version")
        )
    problems: list[Problem] = []
    services: dict[str, LockedImage] = {}
    for name, item in (doc.get("services") or {}).items():
        path = f"services.{name}"
        if not isinstance(item, dict):
            problems.append(Problem("must be an object", file=file, path=path))
            continue
        missing = [k for k in ("image", "reference", "digest") if not isinstance(item.get(k), str)]
        if missing:
            problems.append(Problem(f"missing {', '.join(missing)}", file=file, path=path))
            continue
        platforms = item.get("platforms") or {}
        services[name] = LockedImage(
            item["image"], item["reference"], item["digest"], {str(k): str(v) for k, v in platforms.items()}
        )
    if problems:
        raise StackError(problems)
    return LockFile(services)


def check_lock(images: Mapping[str, str | None], lock: LockFile, file: str = LOCK_FILE_NAME) -> list[Problem]:
    """Where the Compose file (service → ``image:``) and the lock disagree; empty when they agree.

    Services without an image (build only) are not locked and are ignored.
    """
    problems: list[Problem] = []
    for service, image in sorted(images.items()):
        if not image:
            continue
        locked = lock.services.get(service)
        if locked is None:
            problems.append(
                Problem(
                    f"service has image {image!r} but is not in the lock file; run `orc lock`",
                    file=file,
                    path=f"services.{service}",
                )
            )
        elif locked.image != image:
            problems.append(
                Problem(
                    f"the compose file says image {image!r} but the lock pins {locked.image!r}; run `orc lock`",
                    file=file,
                    path=f"services.{service}.image",
                )
            )
    for service in sorted(set(lock.services) - {s for s, i in images.items() if i}):
        problems.append(
            Problem(
                "locked but no such service with an image in the compose file",
                file=file,
                path=f"services.{service}",
            )
        )
    return problems


def locked_source(locked: LockedImage, platform: str | None = None) -> str:
    """What ``up --locked`` pulls: the normalised name pinned to the platform's (or top) digest."""
    parsed = parse_image_source(locked.reference)
    if isinstance(parsed, ArchiveSource):
        return locked.reference
    digest = locked.platforms.get(platform, locked.digest) if platform else locked.digest
    return str(parsed.with_digest(digest))


def locked_sources(
    path: Path, images: Mapping[str, str | None], platforms: Mapping[str, str | None] | None = None
) -> dict[str, str]:
    """What ``up --locked`` pulls, service → pinned source; one call for the ``up`` verb.

    Reads ``path`` and refuses (``StackError`` listing every disagreement, with the lock file and
    dotted path) when it is missing or does not match the compose file's images.
    """
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise StackError(Problem("no lock file; run `orc lock` first", file=str(path))) from exc
    lock = parse_lock(text, str(path))
    problems = check_lock(images, lock, str(path))
    if problems:
        raise StackError(problems)
    return {
        service: locked_source(lock.services[service], (platforms or {}).get(service))
        for service, image in sorted(images.items())
        if image
    }


async def create_lock(
    driver: ImageDriver, images: Mapping[str, str | None], platforms: Mapping[str, str | None] | None = None
) -> LockFile:
    """Resolve every service image to its digests (one registry round trip per distinct image)."""
    services: dict[str, LockedImage] = {}
    cache: dict[tuple[str, str | None], tuple[str, str, str, str]] = {}
    for service, image in sorted(images.items()):
        if not image:
            continue
        platform = (platforms or {}).get(service)
        key = (image, platform)
        if key not in cache:
            try:
                resolved = await driver.resolve_digest(image, platform=platform)
            except PermanentError as exc:
                raise PermanentError(f"service {service}: cannot lock image {image}: {exc}") from exc
            cache[key] = (resolved.reference, resolved.digest, resolved.platform, resolved.platform_digest)
        reference, digest, platform_name, platform_digest = cache[key]
        services[service] = LockedImage(image, reference, digest, {platform_name: platform_digest})
    return LockFile(services)


async def resolve_image_digests(driver: ImageDriver, images: Mapping[str, str | None]) -> dict[str, str]:
    """service → ``name:tag@sha256:…`` for ``orc config --resolve-image-digests``.

    Like Docker Compose (``reference.ParseDockerRef`` + ``WithDigest``), the name is written in
    full (``docker.io/library/redis:7@sha256:…``); an image already pinned by digest is left as
    written, and so is an archive transport.
    """
    out: dict[str, str] = {}
    for service, image in sorted(images.items()):
        if not image:
            continue
        parsed = parse_image_source(image)
        if isinstance(parsed, ArchiveSource) or parsed.digest:
            out[service] = image
            continue
        resolved = await driver.resolve_digest(image)
        out[service] = str(parsed.with_digest(resolved.digest))
    return out
