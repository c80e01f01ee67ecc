"""The images driver: the one interface the reconciler and the CLI use to get images.

Owned here: the :class:`ImageDriver` Protocol, :class:`LocalImages` (the real one: store + registry
client + archive importer) and :class:`FakeImages` (a recording fake for tests of the layers above).

``ensure(source, policy=…)`` is what ``up`` calls per service: it applies the ``pull_policy``
decision (``policy.py``), pulls or imports when needed and returns an :class:`Image` with its
config and overlay lower dirs (uppermost first). ``pull`` always fetches; ``get`` only looks.
Sources are strings as written in ``image:`` (``redis``, ``host:5000/a:1@sha256:…``,
``oci:./dir:tag``); relative archive paths are taken from ``base_dir``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio.to_thread

from orchestrator.errors import NotFoundError, PermanentError
from orchestrator.runtime.images.archive import import_archive
from orchestrator.runtime.images.config import ImageConfig
from orchestrator.runtime.images.policy import Action, PullDecision, decide_pull, parse_pull_policy
from orchestrator.runtime.images.pull import ProgressCallback, Puller
from orchestrator.runtime.images.reference import (
    ArchiveSource,
    Platform,
    Reference,
    host_platform,
    parse_image_source,
)
from orchestrator.runtime.images.registry import RegistryClient, RegistryOptions
from orchestrator.runtime.images.store import Image, ImageStore


@dataclass(frozen=True)
class ResolvedDigest:
    """What a reference points at in its registry now: the top-level digest and this platform's."""

    reference: str
    digest: str
    platform_digest: str
    platform: str

    @property
    def pinned(self) -> str:
        """``name:tag@digest``, the form ``--resolve-image-digests`` prints."""
        base = self.reference.split("@")[0]
        return f"{base}@{self.digest}"


class ImageDriver(Protocol):
    """Getting images for containers. Implemented by :class:`LocalImages` and :class:`FakeImages`."""

    async def ensure(
        self,
        source: str,
        *,
        policy: str | None = None,
        platform: str | None = None,
        has_build: bool = False,
        on_event: ProgressCallback | None = None,
    ) -> Image: ...

    async def pull(
        self, source: str, *, platform: str | None = None, on_event: ProgressCallback | None = None
    ) -> Image: ...

    def get(self, source: str) -> Image | None: ...

    async def resolve_digest(self, source: str, *, platform: str | None = None) -> ResolvedDigest: ...

    def hold(self, image_id: str, holder: str) -> None: ...

    def release(self, image_id: str, holder: str) -> None: ...


class LocalImages:
    """The real images driver over one :class:`ImageStore` and a lazily opened registry client."""

    def __init__(
        self,
        store: ImageStore,
        *,
        registry_options: RegistryOptions | None = None,
        base_dir: Path | None = None,
        default_platform: Platform | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.registry_options = registry_options or RegistryOptions()
        self.base_dir = base_dir
        self.default_platform = default_platform or host_platform()
        self.clock = clock
        self._client: RegistryClient | None = None
        self._puller: Puller | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._puller = None

    async def __aenter__(self) -> LocalImages:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _get_puller(self) -> Puller:
        if self._puller is None:
            self._client = RegistryClient(self.registry_options)
            self._puller = Puller(self.store, self._client, platform=self.default_platform)
        return self._puller

    def parse(self, source: str) -> Reference | ArchiveSource:
        return parse_image_source(source, self.base_dir)

    def _platform(self, platform: str | None) -> Platform:
        return Platform.parse(platform) if platform else self.default_platform

    def get(self, source: str) -> Image | None:
        """The local image for ``source`` (a name as written, or an image id), or None."""
        try:
            parsed = self.parse(source)
        except PermanentError:
            return self.store.lookup(source)
        return self.store.lookup(str(parsed)) or self.store.lookup(source)

    def decide(
        self, source: str, *, policy: str | None = None, has_build: bool = False, platform: str | None = None
    ) -> PullDecision:
        """The ``pull_policy`` decision for ``source`` given what the store holds now.

        A name pulled for another platform than the one wanted counts as absent.
        """
        parsed = self.parse(source)
        record = self.store.ref(str(parsed))
        present = record is not None and self.store.image(record.image) is not None
        if (
            present
            and record is not None
            and record.platform
            and record.platform != str(self._platform(platform))
        ):
            present = False
        if isinstance(parsed, Reference) and parsed.digest and present:
            # a digest-pinned image never changes: no policy needs to fetch it again
            return PullDecision(Action.USE_LOCAL, f"{parsed} is pinned by digest and present")
        return decide_pull(
            parse_pull_policy(policy),
            present=present,
            last_pulled=record.pulled_at if record else None,
            now=self.clock(),
            has_build=has_build,
            image=str(source),
        )

    async def ensure(
        self,
        source: str,
        *,
        policy: str | None = None,
        platform: str | None = None,
        has_build: bool = False,
        on_event: ProgressCallback | None = None,
    ) -> Image:
        decision = self.decide(source, policy=policy, has_build=has_build, platform=platform)
        if decision.action is Action.BUILD:
            raise PermanentError(
                f"{source}: needs a build ({decision.reason}); orc does not build images yet"
            )
        if decision.action is Action.PULL:
            return await self.pull(source, platform=platform, on_event=on_event)
        image = self.get(source)
        if image is None:
            raise NotFoundError(f"image {source} is not present locally")
        return image

    async def pull(
        self, source: str, *, platform: str | None = None, on_event: ProgressCallback | None = None
    ) -> Image:
        parsed = self.parse(source)
        wanted = self._platform(platform)
        if isinstance(parsed, ArchiveSource):
            return await anyio.to_thread.run_sync(lambda: import_archive(self.store, parsed, wanted))
        return await self._get_puller().pull(parsed, platform=wanted, on_event=on_event)

    async def resolve_digest(self, source: str, *, platform: str | None = None) -> ResolvedDigest:
        parsed = self.parse(source)
        wanted = self._platform(platform)
        if isinstance(parsed, ArchiveSource):
            image = await self.pull(source, platform=platform)
            record = self.store.ref(str(parsed))
            top = record.digest if record and record.digest else image.manifest_digest
            return ResolvedDigest(str(parsed), top, image.manifest_digest, image.platform)
        top, chosen = await self._get_puller().resolve(parsed, wanted)
        return ResolvedDigest(str(parsed), top, chosen, str(wanted))

    def hold(self, image_id: str, holder: str) -> None:
        self.store.hold(image_id, holder)

    def release(self, image_id: str, holder: str) -> None:
        self.store.release(image_id, holder)


@dataclass
class FakeImages:
    """A recording fake: images are registered by name; every call is appended to ``calls``.

    ``ensure`` follows the same pull-policy decision as the real driver using ``pulled_at``.
    """

    images: dict[str, Image] = field(default_factory=dict)
    remote: dict[str, Image] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    pulled_at: dict[str, float] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    holds: dict[str, set[str]] = field(default_factory=dict)
    now: float = 0.0

    @staticmethod
    def make_image(name: str, config: ImageConfig | None = None, lower_dirs: tuple[Path, ...] = ()) -> Image:
        """A plausible :class:`Image` for tests (id derived from the name)."""
        import hashlib

        digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
        return Image(
            id=digest,
            manifest_digest=digest,
            config_digest=digest,
            config=config or ImageConfig(cmd=("/bin/sh",)),
            diff_ids=(),
            lower_dirs=lower_dirs,
            size=0,
            platform="linux/amd64",
            references=(name,),
        )

    def _key(self, source: str) -> str:
        parsed = parse_image_source(source)
        return str(parsed)

    async def ensure(
        self,
        source: str,
        *,
        policy: str | None = None,
        platform: str | None = None,
        has_build: bool = False,
        on_event: ProgressCallback | None = None,
    ) -> Image:
        self.calls.append(("ensure", source))
        key = self._key(source)
        decision = decide_pull(
            policy,
            present=key in self.images,
            last_pulled=self.pulled_at.get(key),
            now=self.now,
            has_build=has_build,
            image=source,
        )
        if decision.action is Action.PULL:
            return await self.pull(source, platform=platform)
        if decision.action is Action.BUILD:
            raise PermanentError(f"{source}: needs a build")
        return self.images[key]

    async def pull(
        self, source: str, *, platform: str | None = None, on_event: ProgressCallback | None = None
    ) -> Image:
        self.calls.append(("pull", source))
        key = self._key(source)
        if key not in self.remote:
            raise NotFoundError(f"manifest for {key} not found")
        self.images[key] = self.remote[key]
        self.pulled_at[key] = self.now
        return self.images[key]

    def get(self, source: str) -> Image | None:
        self.calls.append(("get", source))
        return self.images.get(self._key(source))

    async def resolve_digest(self, source: str, *, platform: str | None = None) -> ResolvedDigest:
        self.calls.append(("resolve_digest", source))
        key = self._key(source)
        if key not in self.digests:
            raise NotFoundError(f"manifest for {key} not found")
        return ResolvedDigest(key, self.digests[key], self.digests[key], platform or "linux/amd64")

    def hold(self, image_id: str, holder: str) -> None:
        self.holds.setdefault(image_id, set()).add(holder)

    def release(self, image_id: str, holder: str) -> None:
        self.holds.get(image_id, set()).discard(holder)
