"""Replacing a small file's contents atomically, reusing two inodes instead of making one per write.

Owned here: :func:`replace_contents` and :func:`remove`. Called by ``state.store`` (container and
project records) and ``runtime.network.leases`` (the network state file): the files orc rewrites
on every container start and stop.

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

Callers must not write one file from two threads or processes at once (they hold a lock). A
writer killed between steps leaves the file whole, old or new, and at most a ``.held`` link that
the next write replaces. A reader that opened the file before a write and reads it only after
the *next* write may read a version being rewritten: readers that can race writers retry a
read that does not parse (``state.store.read_json``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def spare_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.spare")


def held_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.held")


def replace_contents(path: Path, payload: bytes, mode: int = 0o600) -> None:
    """Make ``payload`` the contents of ``path`` in one atomic step for readers.

    ``FileNotFoundError`` if the directory does not exist (the caller makes it and retries)."""
    spare = spare_path(path)
    fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
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
    os.replace(spare, path)
    if keeping:
        os.replace(held, spare)


def remove(path: Path) -> None:
    """Remove ``path`` with its spare (and a held link a killed writer left); absent ones are fine."""
    for each in (path, spare_path(path), held_path(path)):
        with contextlib.suppress(FileNotFoundError):
            each.unlink()
