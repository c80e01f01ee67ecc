"""Replacing a small file's contents atomically, reusing two inodes instead of making one per write.

Owned here: :func:`replace_contents`, :func:`remove`, :func:`overwrite` and :class:`InodePool`. Called by
``state.store`` (container and project records) and ``runtime.network.leases`` (the network state
file), the files orc rewrites on every container start and stop, and by ``reconciler.adapter``
for a container's ``/etc`` files.

The usual atomic write (a temporary file renamed over the old one) allocates an inode and frees
one per write. On ext4 without a journal (this project's test machines' root filesystem) the
kernel's inode allocator skips every inode of the block group freed in the last minutes (five
seconds, five minutes while the inode table block is still dirty) and scans past each of them
for every new inode. A record rewritten twice per container start, in a directory that every
``up`` and ``down`` reuses, left a pile of such inodes that every later file creation there
scanned: ~0.3 ms per creation, ~5 % of all CPU of an ``up -d`` of 30 services.

Here a file keeps a hidden spare beside it (``.<name>.spare``). A write puts the new contents
into the spare, links the current version as ``.<name>.held``, renames the spare over the file
(readers opening the file see the old or the new contents, never a mix) and renames the held
version to be the next spare. From the second write on, a file's two inodes are reused.

Files made and removed once per container (its record and the record's spare, the process
runtime's spec, the mount point that keeps its network namespace) would still leave a freed inode
each behind in the same directories at every ``down`` and take a new one at every ``up``: an
:class:`InodePool` keeps such files instead (``remove``/``give`` rename them into the pool's
directory, making a file renames one out), up to :data:`POOL_LIMIT`. A file taken from the pool
still holds its old contents: it is written before it gets its real name, or is a mount point.

Callers must not write one file from two threads or processes at once (they hold a lock). A
writer killed between steps leaves the file whole, old or new, and at most a ``.held`` link that
the next write replaces. A reader that opened the file before a write and reads it only after
the *next* write may read a version being rewritten: readers that can race writers retry a
read that does not parse (``state.store.read_json``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from pathlib import Path

# Files an InodePool keeps at most (the rest are removed): ~5 per container of a burst.
POOL_LIMIT = 1024
# The pool's directory under a state root (hidden: no project is named so).
POOL_DIR = ".spare-inodes"


class InodePool:
    """Unused files in ``directory`` (on the same filesystem as the files they become), shared
    by every process that uses the directory. :func:`inode_pool` gives one instance per
    directory and process."""

    def __init__(self, directory: Path, limit: int = POOL_LIMIT) -> None:
        self.directory = Path(directory)
        self.limit = limit
        self._lock = threading.Lock()
        self._names: list[str] | None = None  # what this process believes is in the directory

    def _known(self) -> list[str]:
        if self._names is None:
            try:
                self._names = os.listdir(self.directory)
            except FileNotFoundError:
                self._names = []
        return self._names

    def take(self, path: Path) -> bool:
        """Rename a pooled file to ``path`` (it keeps its old contents and mode); False if none
        is left. ``FileNotFoundError`` if ``path``'s directory does not exist."""
        with self._lock:
            names = self._known()
            while names:
                name = names.pop()
                try:
                    os.rename(self.directory / name, path)
                    return True
                except FileNotFoundError:
                    if not path.parent.is_dir():
                        names.append(name)
                        raise
                    # another process took it: try the next
            return False

    def give(self, path: Path) -> None:
        """Move ``path`` into the pool, or remove it when the pool is full or cannot take it."""
        with self._lock:
            names = self._known()
            if len(names) < self.limit:
                name = f"{os.getpid()}.{next(_SERIAL)}"
                for attempt in range(2):
                    try:
                        os.rename(path, self.directory / name)
                        names.append(name)
                        return
                    except FileNotFoundError:
                        if not path.exists() and not path.is_symlink():
                            return
                        if attempt == 0:
                            with contextlib.suppress(OSError):
                                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                    except OSError:
                        break
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def spare_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.spare")


def held_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.held")


_POOLS: dict[Path, InodePool] = {}
_POOLS_LOCK = threading.Lock()
_SERIAL = itertools.count()


def inode_pool(directory: Path) -> InodePool:
    """This process's :class:`InodePool` of ``directory``."""
    with _POOLS_LOCK:
        pool = _POOLS.get(directory)
        if pool is None:
            pool = _POOLS[directory] = InodePool(directory)
        return pool


def overwrite(path: Path, payload: bytes, mode: int = 0o644, pool: InodePool | None = None) -> None:
    """Make ``payload`` the contents of ``path``'s inode (made if absent, from ``pool`` if it
    has a file), not atomically.

    Written over the old contents and then cut to length rather than opened with ``O_TRUNC``:
    truncating to zero frees the file's block and the write allocates one again, ~0.2 ms per
    rewrite on ext4 without a journal instead of ~0.01 ms. For files that must keep their inode
    (a container's bind-mounted ``/etc/hosts``) and for :func:`replace_contents`' spare."""
    if pool is None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, mode)
    else:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if pool.take(path):
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                os.fchmod(fd, mode)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        view = memoryview(payload)
        offset = 0
        while offset < len(view):
            offset += os.pwrite(fd, view[offset:], offset)
        os.ftruncate(fd, offset)
    finally:
        os.close(fd)


def replace_contents(path: Path, payload: bytes, mode: int = 0o600, pool: InodePool | None = None) -> None:
    """Make ``payload`` the contents of ``path`` in one atomic step for readers (a missing
    spare is made from ``pool`` when it has a file).

    ``FileNotFoundError`` if the directory does not exist (the caller makes it and retries)."""
    spare = spare_path(path)
    overwrite(spare, payload, mode, pool)
    held = held_path(path)
    try:
        os.link(path, held)
        keeping = True
    except FileNotFoundError:  # the first write: nothing to keep
        keeping = False
    except FileExistsError:  # left by a writer killed between its link and its renames
        os.unlink(held)
        os.link(path, held)
        keeping = True
    except OSError:  # a filesystem without hard links: a new spare next time, as a temporary file
        keeping = False
    os.replace(spare, path)
    if keeping:
        os.replace(held, spare)


def remove(path: Path, pool: InodePool | None = None) -> None:
    """Remove ``path`` with its spare (and a held link a killed writer left), into ``pool`` if
    given; absent ones are fine."""
    for each in (path, spare_path(path)):
        if pool is not None:
            pool.give(each)
        else:
            with contextlib.suppress(FileNotFoundError):
                each.unlink()
    with contextlib.suppress(FileNotFoundError):
        held_path(path).unlink()
