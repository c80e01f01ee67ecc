"""Image references: Docker-style names and skopeo-style archive transports, parsed and normalised.

Owned here: :func:`parse_reference` (``redis`` → ``docker.io/library/redis:latest``), the
:class:`Reference` value, :class:`ArchiveSource` for ``oci:DIR[:tag]``, ``oci-archive:FILE[:tag]`` and
``docker-archive:FILE``, :class:`Platform` and digest helpers. Pure functions; the puller, the store,
the lock file and the CLI call them.
"""

from __future__ import annotations

import os.path
import platform as _platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.errors import PermanentError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_SHA256_HEX = re.compile(r"^[a-f0-9]{64}$")


class InvalidReference(PermanentError):
    """An image reference (or digest, or platform) that cannot be parsed."""


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is a well-formed content digest (sha256 checked strictly)."""
    if not _DIGEST_RE.match(digest):
        raise InvalidReference(f"invalid digest {digest!r}")
    algorithm, _, hex_part = digest.partition(":")
    if algorithm == "sha256" and not _SHA256_HEX.match(hex_part):
        raise InvalidReference(f"invalid sha256 digest {digest!r}: want 64 lowercase hex digits")
    if algorithm not in ("sha256", "sha512"):
        raise InvalidReference(f"unsupported digest algorithm {algorithm!r} in {digest!r}")
    return digest


@dataclass(frozen=True)
class Reference:
    """A normalised registry reference: ``domain/path[:tag][@digest]``.

    ``tag`` is ``latest`` when neither a tag nor a digest was given, as Docker does.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``docker.io/library/redis`` — the repository without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def registry_host(self) -> str:
        """Where the registry API lives (Docker Hub's API host differs from its name)."""
        return "registry-1.docker.io" if self.domain == DEFAULT_DOMAIN else self.domain

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest if pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def familiar(self) -> str:
        """The short form Docker prints: ``redis:latest``, ``user/app:1``, ``host:5000/x:y``."""
        path = self.path
        if self.domain == DEFAULT_DOMAIN:
            if path.startswith(OFFICIAL_NAMESPACE + "/") and path.count("/") == 1:
                path = path[len(OFFICIAL_NAMESPACE) + 1 :]
            text = path
        else:
            text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, self.tag, validate_digest(digest))

    def without_digest(self) -> Reference:
        return Reference(self.domain, self.path, self.tag or DEFAULT_TAG, None)


ArchiveTransport = Literal["oci", "oci-archive", "docker-archive"]
TRANSPORTS: tuple[ArchiveTransport, ...] = ("oci", "oci-archive", "docker-archive")


@dataclass(frozen=True)
class ArchiveSource:
    """An image stored on disk: an OCI layout directory, an OCI layout tarball or a ``docker save`` tar.

    ``tag`` selects an image inside the layout (``org.opencontainers.image.ref.name``) or, for
    docker-archive, a RepoTag; None takes the only image there is.
    """

    transport: ArchiveTransport
    path: str
    tag: str | None = None

    def __str__(self) -> str:
        return f"{self.transport}:{self.path}" + (f":{self.tag}" if self.tag else "")


ImageSource = Reference | ArchiveSource


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~")) or text in (".", "..")


def parse_reference(text: str) -> Reference:
    """Parse and normalise a registry reference as Docker does.

    ``redis`` → ``docker.io/library/redis:latest``; ``host:5000/a/b@sha256:…`` keeps no tag;
    uppercase repository names, empty components and bad tags or digests are refused.
    """
    original = text
    text = text.strip()
    if text.startswith("docker://"):
        text = text[len("docker://") :]
    if not text:
        raise InvalidReference("empty image reference")
    digest: str | None = None
    if "@" in text:
        text, _, digest = text.partition("@")
        validate_digest(digest)
    tag: str | None = None
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"invalid tag {tag!r} in image reference {original!r}")
    domain, _, rest = text.partition("/")
    if not rest or not ("." in domain or ":" in domain or domain == "localhost" or domain != domain.lower()):
        domain, rest = DEFAULT_DOMAIN, text
    if domain in LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if not _DOMAIN_RE.match(domain):
        raise InvalidReference(f"invalid registry host {domain!r} in image reference {original!r}")
    if rest != rest.lower():
        raise InvalidReference(f"invalid image reference {original!r}: repository name must be lowercase")
    if not _PATH_RE.match(rest):
        raise InvalidReference(f"invalid image reference {original!r}: bad repository name {rest!r}")
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = f"{OFFICIAL_NAMESPACE}/{rest}"
    if len(f"{domain}/{rest}") > 255:
        raise InvalidReference(f"invalid image reference {original!r}: repository name too long")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, rest, tag, digest)


def parse_image_source(text: str, base_dir: Path | None = None) -> ImageSource:
    """Parse what a user may write in ``image:`` or ``orc pull``: a reference or an archive transport.

    ``oci:``, ``oci-archive:`` and ``docker-archive:`` count as transports only when a path follows
    (``/abs``, ``./rel``, ``../rel``), so an image named ``oci:latest`` stays a registry reference.
    Relative paths are taken from ``base_dir`` (the project directory).
    """
    for transport in TRANSPORTS:
        prefix = transport + ":"
        if text.startswith(prefix) and _looks_like_path(text[len(prefix) :]):
            rest = text[len(prefix) :]
            path, _, tag = rest.partition(":")
            if transport == "docker-archive" and tag:
                # docker-archive:FILE:ref names a RepoTag inside the archive
                tag = str(parse_reference(tag))
            resolved = Path(path).expanduser()
            if not resolved.is_absolute() and base_dir is not None:
                resolved = base_dir / resolved
            return ArchiveSource(transport, os.path.normpath(resolved), tag or None)
    return parse_reference(text)


# --- platforms -----------------------------------------------------------------------------

_ARCH_ALIASES = {
    "x86_64": ("amd64", None),
    "x86-64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", None),
    "i686": ("386", None),
}


@dataclass(frozen=True)
class Platform:
    """An OCI platform (``linux/arm64/v8``). ``variant`` None matches any variant."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().lower().split("/")
        if len(parts) < 2 or len(parts) > 3 or not all(parts):
            raise InvalidReference(f"invalid platform {text!r}: want os/arch[/variant]")
        arch, variant = _ARCH_ALIASES.get(parts[1], (parts[1], None))
        if len(parts) == 3:
            variant = parts[2]
        return cls(parts[0], arch, _normal_variant(arch, variant))

    def matches(self, os_name: str, architecture: str, variant: str | None) -> bool:
        """Whether a descriptor's platform satisfies this wanted platform."""
        if os_name != self.os:
            return False
        arch, default_variant = _ARCH_ALIASES.get(architecture, (architecture, None))
        if arch != self.architecture:
            return False
        if self.variant is None:
            return True
        return _normal_variant(arch, variant or default_variant) == self.variant


def _normal_variant(arch: str, variant: str | None) -> str | None:
    if arch == "arm64" and variant in (None, "v8", "8"):
        return None
    if variant and variant.isdigit():
        return "v" + variant
    return variant


def host_platform(machine: str | None = None) -> Platform:
    """The platform this machine runs (``uname -m`` mapped to OCI names); ``machine`` for tests."""
    arch, variant = _ARCH_ALIASES.get(machine or _platform.machine(), (machine or _platform.machine(), None))
    return Platform("linux", arch, variant)
