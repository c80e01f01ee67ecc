"""Pulling an image from a registry into the content store, layers in parallel, with progress events.

Owned here: :class:`Puller` and :class:`PullEvent`. The images driver (``driver.py``) and ``orc
pull`` call :meth:`Puller.pull`. Order of work: manifest (index → the wanted platform's manifest),
config, then every layer whose diff-id the store lacks is streamed from the socket into a worker
thread that unpacks it into ``tmp/`` (digest verified before anything is committed); manifest and config
blobs, the image record and the name are written last, so a failed pull leaves only complete,
shared layers behind (which the next pull reuses) and never a half-visible image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream

from orchestrator.errors import OrcError, PermanentError
from orchestrator.runtime.images.config import parse_image_config
from orchestrator.runtime.images.manifest import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    parse_manifest,
    select_platform,
)
from orchestrator.runtime.images.reference import Platform, Reference, host_platform
from orchestrator.runtime.images.registry import RegistryClient
from orchestrator.runtime.images.store import Image, ImageStore
from orchestrator.runtime.images.unpack import decompressed

EventKind = Literal[
    "resolved", "exists", "waiting", "downloading", "verifying", "extracting", "done", "pulled"
]


@dataclass(frozen=True)
class PullEvent:
    """Progress of one pull. ``layer`` is the layer digest (None for image-level events)."""

    kind: EventKind
    reference: str
    layer: str | None = None
    current: int = 0
    total: int = 0
    message: str = ""


ProgressCallback = Callable[[PullEvent], None]


class Puller:
    """Pulls references from registries into one store."""

    def __init__(
        self,
        store: ImageStore,
        client: RegistryClient,
        *,
        platform: Platform | None = None,
        download_limit: int = 4,
    ) -> None:
        self.store = store
        self.client = client
        self.platform = platform or host_platform()
        self._downloads = anyio.CapacityLimiter(download_limit)
        self._layer_locks: dict[str, anyio.Lock] = {}

    async def resolve(self, ref: Reference, platform: Platform | None = None) -> tuple[str, str]:
        """(top-level digest, platform manifest digest) the reference points at now, fetching no layers."""
        top = await self.client.get_manifest(ref)
        parsed = parse_manifest(top.data, top.media_type)
        if isinstance(parsed, ImageIndex):
            chosen = select_platform(parsed, platform or self.platform)
            return top.digest, chosen.digest
        return top.digest, top.digest

    async def pull(
        self,
        ref: Reference,
        *,
        platform: Platform | None = None,
        on_event: ProgressCallback | None = None,
    ) -> Image:
        """Pull ``ref`` for ``platform`` (default: this host's) and name it ``str(ref)`` in the store."""
        wanted = platform or self.platform
        emit = on_event or (lambda _e: None)
        name = str(ref)
        top = await self.client.get_manifest(ref)
        parsed = parse_manifest(top.data, top.media_type)
        manifest_bytes, manifest_digest = top.data, top.digest
        if isinstance(parsed, ImageIndex):
            chosen = select_platform(parsed, wanted)
            fetched = await self.client.get_manifest(ref, chosen.digest)
            manifest_bytes, manifest_digest = fetched.data, fetched.digest
            parsed = parse_manifest(fetched.data, fetched.media_type or chosen.media_type)
            if not isinstance(parsed, ImageManifest):
                raise PermanentError(f"{ref}: index entry {chosen.digest} is not an image manifest")
        manifest: ImageManifest = parsed
        emit(PullEvent("resolved", name, message=top.digest))

        config_digest = manifest.config.digest
        if not self.store.has_blob(config_digest):
            config_bytes = await self.client.get_blob_bytes(ref, config_digest, manifest.config.size)
            self.store.put_blob(config_bytes, config_digest)
        config = parse_image_config(self.store.read_blob(config_digest))
        if len(config.diff_ids) != len(manifest.layers):
            raise PermanentError(
                f"{ref}: manifest lists {len(manifest.layers)} layers but the config {len(config.diff_ids)} diff-ids"
            )
        image_platform = f"{config.os}/{config.architecture}" + (
            f"/{config.variant}" if config.variant else ""
        )

        try:
            async with anyio.create_task_group() as tg:
                for descriptor, diff_id in zip(manifest.layers, config.diff_ids, strict=True):
                    if self.store.layer(diff_id) is not None:
                        emit(PullEvent("exists", name, descriptor.digest, descriptor.size, descriptor.size))
                        continue
                    emit(PullEvent("waiting", name, descriptor.digest, 0, descriptor.size))
                    tg.start_soon(self._fetch_layer, ref, descriptor, diff_id, emit)
        except BaseExceptionGroup as group:
            raise first_error(group) from None

        self.store.put_blob(manifest_bytes, manifest_digest)
        if top.digest != manifest_digest:
            self.store.put_blob(top.data, top.digest)
        image_id = self.store.put_image(manifest_digest, config_digest, image_platform)
        self.store.tag(name, image_id, top.digest, pulled=True, platform=str(wanted))
        image = self.store.image(image_id)
        if image is None:  # removed by a concurrent prune between the last two calls
            raise PermanentError(f"{ref}: image vanished from the store while being pulled; pull again")
        emit(PullEvent("pulled", name, message=top.digest))
        return image

    async def _fetch_layer(
        self, ref: Reference, descriptor: Descriptor, diff_id: str, emit: ProgressCallback
    ) -> None:
        """Download a layer and unpack it at the same time (no compressed copy is written).

        The download task feeds chunks through a bounded in-memory stream to a worker thread that
        decompresses, hashes and unpacks them into ``tmp/``. The worker reaches end of stream only
        after the download verified the blob digest; a failed download surfaces in the worker as
        the download's own error, so the layer is never committed. When unpacking fails first,
        the download still runs to its verdict so a corrupted transfer is reported as such.
        """
        lock = self._layer_locks.setdefault(diff_id, anyio.Lock())
        async with lock:
            if self.store.layer(diff_id) is not None:
                emit(PullEvent("exists", str(ref), descriptor.digest, descriptor.size, descriptor.size))
                return
            async with self._downloads:
                done = 0

                def progress(n: int) -> None:
                    nonlocal done
                    done += n
                    emit(PullEvent("downloading", str(ref), descriptor.digest, done, descriptor.size))

                send, receive = anyio.create_memory_object_stream[bytes](PIPE_CHUNKS)
                pipe = _ChunkPipe(receive)

                async def produce() -> None:
                    try:
                        await self.client.download_blob(
                            ref, descriptor.digest, descriptor.size, send.send, progress
                        )
                    except Exception as exc:
                        pipe.error = exc
                    finally:
                        await send.aclose()

                emit(PullEvent("downloading", str(ref), descriptor.digest, 0, descriptor.size))
                async with anyio.create_task_group() as tg:
                    tg.start_soon(produce)
                    try:
                        await anyio.to_thread.run_sync(
                            lambda: self.store.add_layer(lambda: decompressed(pipe), diff_id)  # type: ignore[arg-type]
                        )
                    except Exception:
                        # Let the download finish (discarding its bytes): if the blob itself fails
                        # verification, that is the error to report, not what unpacking made of it.
                        async for _chunk in receive:
                            pass
                        if pipe.error is not None:
                            raise pipe.error from None
                        raise
                if pipe.error is not None:
                    raise pipe.error
                emit(PullEvent("done", str(ref), descriptor.digest, descriptor.size, descriptor.size))


PIPE_CHUNKS = 64


class _ChunkPipe:
    """The worker thread's end of the download stream: a blocking ``read`` over async chunks."""

    def __init__(self, receive: MemoryObjectReceiveStream[bytes]) -> None:
        self.receive = receive
        self.error: Exception | None = None
        self._pending = b""

    def read(self, n: int = -1) -> bytes:
        if not self._pending:
            try:
                self._pending = anyio.from_thread.run(self.receive.receive)
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                if self.error is not None:
                    raise self.error from None
                return b""
        if n < 0 or n >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:n], self._pending[n:]
        return data


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The error to report from a failed task group: the first orc error, else the first error."""
    leaves: list[BaseException] = []

    def walk(g: BaseExceptionGroup) -> None:
        for e in g.exceptions:
            if isinstance(e, BaseExceptionGroup):
                walk(e)
            else:
                leaves.append(e)

    walk(group)
    for e in leaves:
        if isinstance(e, OrcError):
            return e
    return leaves[0]
