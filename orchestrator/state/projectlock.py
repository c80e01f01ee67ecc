"""The project lock's file, standard library only: ``<run root>/.<project>.lock``, ``flock``ed
exclusively by whoever changes the project, with the holder's pid written in it for the "busy"
message. The file is never deleted, so two processes always lock the same inode.

Owned here too: the rule for names that may become state file names (:data:`SAFE_NAME`). Used by
``state.store`` (``FileStateStore.lock``, which waits its turn, and ``check_name``) and by
``daemon.spawn`` (the CLI's early supervisor start, which does not wait and must not import the
store).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from pathlib import Path

from orchestrator.runtime.fsflags import mark_top_directory

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def open_lock(root: Path, project: str) -> int:
    """The lock file's descriptor (the file made if missing); the caller closes it.

    The run root is marked as a top directory (``runtime.fsflags``; a check of its flags when it
    has the mark already) before anything of the project is made in it: ext4 then spreads the
    projects' state directories over its block groups, away from the inodes that the last
    ``down`` freed."""
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        mark_top_directory(root)
    return os.open(root / f".{project}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def try_take(fd: int) -> bool:
    """Take the lock without waiting; once taken, record this process as its holder."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    # Written over and cut to length, not emptied first: emptying a file frees its block (and
    # the write takes one again), ~0.2 ms on ext4 without a journal.
    pid = str(os.getpid()).encode()
    os.pwrite(fd, pid, 0)
    os.ftruncate(fd, len(pid))
    return True


def holder(fd: int) -> str:
    """The pid the holder wrote, or ``unknown``."""
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"


def release(fd: int) -> None:
    """Let go of the lock. The holder's pid stays in the file: it is read only by someone who
    could not take the lock, after its holder wrote its own."""
    fcntl.flock(fd, fcntl.LOCK_UN)
