"""Writing back what orc left dirty on its filesystems, once, in the background.

Owned here: :func:`write_back`, which ``daemon.supervisor`` runs in a thread of its own after an
``up`` is done. orc writes its state files without ``fsync`` (a rename keeps readers from ever
seeing half of one; see ``state.store``), and a container's first files (its ``/etc`` files,
its log, its upper directory) are dirty pages too: the kernel writes them back within half a
minute on its own. Until then they are what the first container exit afterwards waits for:
overlayfs syncs the whole upper filesystem when a container's last mount of it goes
(``ovl_sync_fs``), so a ``down`` soon after an ``up`` paid ~10-20 ms in its first wave of stops
for the ``up``'s writeback. Done right after the ``up`` instead, it is also the ``up``'s state on
disk a little sooner.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
_running = threading.Lock()


def _syncfs(fd: int) -> None:
    if _libc.syncfs(fd) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def write_back(paths: Iterable[Path], syncfs: Callable[[int], None] = _syncfs) -> int:
    """``syncfs(2)`` each filesystem that holds one of ``paths`` (once each; paths that do not
    exist are skipped). Returns how many were synced; 0 when a write-back is already under way
    (it writes back what this one would). A failure is reported on stderr (the supervisor's log),
    not raised: nothing waits for this."""
    if not _running.acquire(blocking=False):
        return 0
    try:
        seen: set[int] = set()
        synced = 0
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                device = os.fstat(fd).st_dev
                if device in seen:
                    continue
                seen.add(device)
                syncfs(fd)
                synced += 1
            except OSError as exc:
                print(f"orc: writing back {path}: {exc.strerror}", file=sys.stderr)
            finally:
                os.close(fd)
        return synced
    finally:
        _running.release()


def write_back_in_background(paths: Iterable[Path]) -> threading.Thread:
    """:func:`write_back` in a daemon thread (the process may exit without waiting for it)."""
    thread = threading.Thread(target=write_back, args=(tuple(paths),), name="orc-write-back", daemon=True)
    thread.start()
    return thread


__all__ = ["write_back", "write_back_in_background"]
