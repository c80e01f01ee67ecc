"""Anonymous volumes and filling an empty volume from the image, as Docker does ("copy-up").

Owned here: :func:`anonymous_key` (an anonymous volume's directory is named after its target,
so a recreated container finds the one its predecessor used), :func:`image_volume_targets` (the
image's ``VOLUME`` paths that get anonymous volumes), and :func:`copy_up`, called by the runtime adapter at container start for each named or
anonymous volume (not ``nocopy``, not external, not a ``driver_opts`` bind device) whose
directory is empty: the image's content at the mount target, merged across the image's layers
the way overlayfs shows it (upper layers win; a 0/0 character device is a whiteout that hides
the path below; a directory with ``trusted.overlay.opaque=y`` hides everything below it), is
copied into the volume with owners, modes and symlinks kept.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

from orchestrator.hashing import sha256_hex

_OPAQUE = "trusted.overlay.opaque"


def _is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _remove(path: Path) -> None:
    info = _lstat(path)
    if info is None:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def _clear(directory: Path) -> None:
    for entry in list(directory.iterdir()):
        _remove(entry)


def _merge(source: Path, destination: Path) -> None:
    """Lay the layer directory ``source`` over ``destination`` (which exists)."""
    for entry in os.scandir(source):
        src = Path(entry.path)
        dst = destination / entry.name
        info = entry.stat(follow_symlinks=False)
        if _is_whiteout(info):
            _remove(dst)
        elif stat.S_ISDIR(info.st_mode):
            existing = _lstat(dst)
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                _remove(dst)
            if not dst.is_dir() or dst.is_symlink():
                dst.mkdir()
            elif _is_opaque(src):
                _clear(dst)
            _merge(src, dst)
            os.chown(dst, info.st_uid, info.st_gid, follow_symlinks=False)
            os.chmod(dst, stat.S_IMODE(info.st_mode))
        else:
            _remove(dst)
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISREG(info.st_mode):
                shutil.copy2(src, dst, follow_symlinks=False)
            else:
                continue  # devices, fifos and sockets are not volume content
            os.chown(dst, info.st_uid, info.st_gid, follow_symlinks=False)


def copy_up(lower_dirs: Sequence[str], target: str, volume: Path) -> bool:
    """Fill the empty directory ``volume`` with the image's merged content at ``target``
    (``lower_dirs`` top-most first, as overlayfs takes them). False when ``volume`` is not
    empty or the image has no directory there. Symlinks on the way to ``target`` are not
    followed (Docker resolves them in the container's root; an image path through a symlink
    is left empty here)."""
    if any(volume.iterdir()):
        return False
    parts = [p for p in target.split("/") if p and p != "."]
    if not parts or ".." in parts:
        return False
    copied = False
    top_info: os.stat_result | None = None
    for layer in reversed(lower_dirs):  # bottom-most first
        base = Path(layer)
        hidden = False
        for depth in range(1, len(parts) + 1):
            info = _lstat(base.joinpath(*parts[:depth]))
            if info is None:
                break
            if _is_whiteout(info) or (depth < len(parts) and not stat.S_ISDIR(info.st_mode)):
                hidden = True
                break
            if depth < len(parts) and _is_opaque(base.joinpath(*parts[:depth])):
                hidden = True  # what lower layers had below this directory is gone
        if hidden:
            _clear(volume)
            copied = False
            top_info = None
        source = base.joinpath(*parts)
        info = _lstat(source)
        if info is None or not stat.S_ISDIR(info.st_mode):
            continue
        if _is_opaque(source):
            _clear(volume)
        _merge(source, volume)
        copied = True
        top_info = info
    if copied and top_info is not None:
        os.chown(volume, top_info.st_uid, top_info.st_gid)
        os.chmod(volume, stat.S_IMODE(top_info.st_mode))
    return copied


def anonymous_key(target: str) -> str:
    """The directory name of the anonymous volume mounted at ``target``: stable across the
    container's recreations (Docker carries anonymous volumes over by their path)."""
    return sha256_hex(posixpath.normpath(target).encode())[:16]


def image_volume_targets(image_volumes: Sequence[str], taken: Sequence[str]) -> list[str]:
    """The image's ``VOLUME`` paths that no mount of the service (``taken``: volume, bind and
    tmpfs targets) covers: as Docker does, each gets an anonymous volume."""
    covered = {posixpath.normpath(t) for t in taken}
    wanted = {posixpath.normpath(v) for v in image_volumes if v.startswith("/")}
    return sorted(wanted - covered)
