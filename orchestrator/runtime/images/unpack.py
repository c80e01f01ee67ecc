"""Layer unpacking: a (compressed) layer tar stream into a directory overlayfs can use as a lower dir.

Owned here: :func:`unpack_layer`, :func:`open_decompressed` and :class:`UnpackOptions`. The content
store calls it on a fresh temporary directory and renames the result into place only on success.

Rules, all enforced without ever following a symlink on the host:

* every path is resolved one component at a time from the layer root with ``O_NOFOLLOW``; an entry
  whose name holds ``..`` or whose parent is a symlink is refused (:class:`HostileLayerError`), so
  nothing is written outside the layer directory whatever the layer's own symlinks say;
* hard links must point at a file already unpacked from the same layer;
* ``.wh.NAME`` becomes a 0/0 character device (overlay's whiteout) and ``.wh..wh..opq`` the
  ``trusted.overlay.opaque=y`` xattr on its directory;
* a later entry for the same path replaces the earlier one (tar semantics);
* total bytes and entry count are capped (decompression bombs);
* ownership, modes (incl. setuid), xattrs (PAX ``SCHILY.xattr.``), device nodes and mtimes are
  restored when ``privileged``; without privilege ownership and device nodes are skipped.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

import zstandard

from orchestrator.errors import PermanentError, TemporaryError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
WHITEOUT_META_PREFIX = ".wh..wh."
COPY_CHUNK = 1 << 20


class HostileLayerError(PermanentError):
    """A layer tries to write outside its directory, or exceeds the configured limits."""


class LayerFormatError(PermanentError):
    """A layer that is not a readable (optionally gzip/zstd compressed) tar stream."""


@dataclass(frozen=True)
class UnpackOptions:
    """How to unpack. ``privileged`` restores owners, device nodes and trusted xattrs (needs root)."""

    privileged: bool = True
    opaque_xattr: str = "trusted.overlay.opaque"
    max_bytes: int = 64 << 30
    max_entries: int = 5_000_000


@dataclass(frozen=True)
class UnpackResult:
    """``diff_id`` is the sha256 of the uncompressed tar; ``size`` the bytes of file content written."""

    diff_id: str
    size: int
    entries: int


class _HashingReader:
    """Wraps a stream and hashes (and counts) every byte read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hasher = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hasher.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(COPY_CHUNK):
            pass


def sniff_compression(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "none"


class _Prepended:
    """A stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self.head = head
        self.raw = raw

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                data, self.head = self.head + self.raw.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.raw.read(n)


class _GzipReader:
    """Gzip decompression with large reads (``gzip.GzipFile`` reads 8 KiB at a time).

    Handles concatenated members and zero padding after the last one; a stream that ends inside
    a member raises ``EOFError``.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self._d = zlib.decompressobj(wbits=31)
        self._buf = bytearray()
        self._eof = False

    def _fill(self) -> None:
        chunk = self.raw.read(COPY_CHUNK)
        if not chunk:
            if not self._d.eof:
                raise EOFError("compressed layer ends before the end of its gzip stream")
            self._eof = True
            return
        while chunk:
            if self._d.eof:
                chunk = chunk.lstrip(b"\0")
                if not chunk:
                    return
                self._d = zlib.decompressobj(wbits=31)
            self._buf += self._d.decompress(chunk)
            chunk = self._d.unused_data

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            self._fill()
        if n < 0 or n >= len(self._buf):
            data = bytes(self._buf)
            self._buf.clear()
        else:
            data = bytes(self._buf[:n])
            del self._buf[:n]
        return data


def _read_exactly(raw: IO[bytes], n: int) -> bytes:
    head = b""
    while len(head) < n:
        more = raw.read(n - len(head))
        if not more:
            break
        head += more
    return head


@contextlib.contextmanager
def decompressed(raw: IO[bytes]) -> Iterator[IO[bytes]]:
    """Yield the uncompressed stream of a layer blob stream, compression sniffed from magic bytes."""
    head = _read_exactly(raw, 4)
    source: IO[bytes] = _Prepended(head, raw)  # type: ignore[assignment]
    kind = sniff_compression(head)
    if kind == "gzip":
        yield _GzipReader(source)  # type: ignore[misc]
    elif kind == "zstd":
        # windows up to 2 GiB, as layers made with zstd --long need more than the 128 MiB default
        with zstandard.ZstdDecompressor(max_window_size=1 << 31).stream_reader(
            source, read_across_frames=True
        ) as zs:
            yield zs
    else:
        yield source


@contextlib.contextmanager
def open_decompressed(path: Path) -> Iterator[IO[bytes]]:
    """Open a layer blob file and yield its uncompressed stream."""
    with open(path, "rb") as raw, decompressed(raw) as stream:
        yield stream


def _split(name: str) -> list[str]:
    """Tar member name → path components, refusing ``..`` and anything that would escape."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise HostileLayerError(f"layer entry {name!r} escapes the layer (contains '..')")
    return parts


class _Tree:
    """Opens directories inside the layer root one component at a time, never following symlinks."""

    def __init__(self, root: Path) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self._cached: tuple[tuple[str, ...], int] | None = None

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root_fd)

    def _drop_cache(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def parent_fd(self, parts: list[str], create: bool = True) -> int:
        """An fd of the directory holding ``parts[-1]`` (owned by the cache; do not close)."""
        key = tuple(parts[:-1])
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        self._drop_cache()
        fd = os.dup(self.root_fd)
        try:
            for i, comp in enumerate(key):
                try:
                    nfd = os.open(
                        comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                    )
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    nfd = os.open(
                        comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                    )
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise HostileLayerError(
                            f"layer entry {'/'.join(parts)!r} passes through "
                            f"{'/'.join(key[: i + 1])!r}, which is not a directory (symlink?)"
                        ) from exc
                    raise
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        self._cached = (key, fd)
        return fd

    def invalidate(self) -> None:
        self._drop_cache()


def _remove_existing(dir_fd: int, name: str, keep_dir: bool) -> None:
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return
        import shutil

        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _apply_xattrs(fd: int, member: tarfile.TarInfo, options: UnpackOptions) -> None:
    for key, value in member.pax_headers.items():
        if not key.startswith("SCHILY.xattr."):
            continue
        attr = key[len("SCHILY.xattr.") :]
        if not options.privileged and not attr.startswith("user."):
            continue
        raw = value.encode("utf-8", "surrogateescape")
        with contextlib.suppress(OSError):
            os.setxattr(fd, attr, raw)


def _finish_fd(fd: int, member: tarfile.TarInfo, options: UnpackOptions) -> None:
    if options.privileged:
        os.fchown(fd, member.uid, member.gid)
    os.fchmod(fd, member.mode & 0o7777)
    _apply_xattrs(fd, member, options)


def unpack_layer(
    stream: IO[bytes] | BinaryIO, dest: Path, options: UnpackOptions | None = None
) -> UnpackResult:
    """Unpack an uncompressed layer tar ``stream`` into the existing empty directory ``dest``."""
    options = options or UnpackOptions()
    reader = _HashingReader(stream)
    tree = _Tree(dest)
    written = 0
    entries = 0
    dir_times: dict[tuple[str, ...], tuple[float, float]] = {}
    current = ""
    try:
        try:
            try:
                tar = tarfile.open(fileobj=reader, mode="r|", bufsize=COPY_CHUNK)  # type: ignore[call-overload]  # noqa: SIM115
            except tarfile.ReadError as exc:
                raise LayerFormatError(f"layer is not a tar archive: {exc}") from exc
            for member in tar:
                current = member.name
                entries += 1
                if entries > options.max_entries:
                    raise HostileLayerError(f"layer has more than {options.max_entries} entries")
                parts = _split(member.name)
                if not parts:
                    if member.isdir():
                        _finish_fd(tree.root_fd, member, options)
                    continue
                base = parts[-1]
                if base == OPAQUE_MARKER:
                    os.setxattr(tree.parent_fd(parts), options.opaque_xattr, b"y")
                    continue
                if any(p.startswith(WHITEOUT_META_PREFIX) for p in parts):
                    # aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content
                    continue
                if base.startswith(WHITEOUT_PREFIX):
                    target = base[len(WHITEOUT_PREFIX) :]
                    if not target or target in (".", ".."):
                        raise HostileLayerError(f"bad whiteout entry {member.name!r}")
                    pfd = tree.parent_fd(parts)
                    _remove_existing(pfd, target, keep_dir=False)
                    os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
                    continue
                pfd = tree.parent_fd(parts)
                if member.isdir():
                    _remove_existing(pfd, base, keep_dir=True)
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(base, 0o700, dir_fd=pfd)
                    dfd = os.open(
                        base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd
                    )
                    try:
                        _finish_fd(dfd, member, options)
                    finally:
                        os.close(dfd)
                    dir_times[tuple(parts)] = (member.mtime, member.mtime)
                    # a directory may replace what the cached parent chain saw
                    tree.invalidate()
                    continue
                _remove_existing(pfd, base, keep_dir=False)
                if member.isreg():
                    written += member.size
                    if written > options.max_bytes:
                        raise HostileLayerError(f"layer unpacks to more than {options.max_bytes} bytes")
                    fd = os.open(
                        base,
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                        0o600,
                        dir_fd=pfd,
                    )
                    try:
                        src = tar.extractfile(member)
                        if src is not None:
                            remaining = member.size
                            while remaining > 0:
                                chunk = src.read(min(COPY_CHUNK, remaining))
                                if not chunk:
                                    raise LayerFormatError(f"layer ends inside {member.name!r}")
                                view = memoryview(chunk)
                                while view:
                                    n = os.write(fd, view)
                                    view = view[n:]
                                remaining -= len(chunk)
                        _finish_fd(fd, member, options)
                        os.utime(fd, (member.mtime, member.mtime))
                    finally:
                        os.close(fd)
                elif member.issym():
                    os.symlink(member.linkname, base, dir_fd=pfd)
                    if options.privileged:
                        os.chown(base, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
                    os.utime(base, (member.mtime, member.mtime), dir_fd=pfd, follow_symlinks=False)
                elif member.islnk():
                    target_parts = _split(member.linkname)
                    if not target_parts:
                        raise HostileLayerError(f"hard link {member.name!r} points at the layer root")
                    try:
                        tfd = os.dup(tree.parent_fd(target_parts, create=False))
                    except FileNotFoundError as exc:
                        raise HostileLayerError(
                            f"hard link {member.name!r} → {member.linkname!r}: target not in this layer"
                        ) from exc
                    try:
                        # parent_fd may have been replaced; reopen ours after resolving the target's
                        pfd = tree.parent_fd(parts)
                        try:
                            tst = os.lstat(target_parts[-1], dir_fd=tfd)
                        except FileNotFoundError as exc:
                            raise HostileLayerError(
                                f"hard link {member.name!r} → {member.linkname!r}: target not in this layer"
                            ) from exc
                        if stat.S_ISDIR(tst.st_mode):
                            raise HostileLayerError(f"hard link {member.name!r} points at a directory")
                        os.link(target_parts[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
                    finally:
                        os.close(tfd)
                elif member.ischr() or member.isblk():
                    if options.privileged:
                        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                        os.mknod(
                            base,
                            kind | (member.mode & 0o7777),
                            os.makedev(member.devmajor, member.devminor),
                            dir_fd=pfd,
                        )
                        os.chown(base, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
                elif member.isfifo():
                    os.mkfifo(base, member.mode & 0o7777, dir_fd=pfd)
                    if options.privileged:
                        os.chown(base, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
                else:
                    raise LayerFormatError(
                        f"layer entry {member.name!r} has unsupported type {member.type!r}"
                    )
            reader.drain()
        except tarfile.TarError as exc:
            raise LayerFormatError(f"corrupt layer tar: {exc}") from exc
        except (EOFError, zstandard.ZstdError, gzip.BadGzipFile, zlib.error) as exc:
            raise LayerFormatError(f"corrupt or truncated layer: {exc}") from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise TemporaryError(f"no space left for the layer in {dest}: {exc.strerror}", 30.0) from exc
            raise LayerFormatError(f"cannot unpack layer entry {current!r}: {exc.strerror or exc}") from exc
        # directory mtimes last: creating entries inside them changed them
        tree.invalidate()
        for parts_key, times in sorted(dir_times.items(), key=lambda kv: -len(kv[0])):
            parts = list(parts_key)
            try:
                pfd = tree.parent_fd(parts, create=False)
                os.utime(parts[-1], times, dir_fd=pfd, follow_symlinks=False)
            except (FileNotFoundError, HostileLayerError):
                continue
    finally:
        tree.close()
    return UnpackResult(diff_id="sha256:" + reader.hasher.hexdigest(), size=written, entries=entries)
