"""Inode flags on orc's own directories (``chattr``'s flags, through ``FS_IOC_GETFLAGS`` and
``FS_IOC_SETFLAGS``). Called by ``reconciler.adapter`` for the directory that holds every
container's directory.

``mark_top_directory`` sets ``FS_TOPDIR_FL`` (``chattr +T``): ext4's Orlov allocator then places
each subdirectory as it places top-level directories, spread over the block groups by the hash
of its name, instead of in its parent's group. Containers' directories are unrelated to each
other, which is what the flag is for, and on an ext4 without a journal it matters: there every
new inode is found by scanning past the inodes of its group freed in the last minute or more
(``recently_deleted`` in the kernel), and a ``down`` followed by an ``up`` otherwise frees and
allocates hundreds of inodes (upper and work directories, the overlay's probes of its work
directory on every mount, the ``/etc`` files) in one group. Filesystems without the flag (tmpfs,
overlayfs, btrfs...) refuse the ioctl; that is not an error.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000
# The ioctls are declared with a long, but the kernel reads and writes an int.
_FLAGS = struct.Struct("=i")
_UNSUPPORTED = {errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EACCES}


def _flags_of(fd: int) -> int:
    return int(_FLAGS.unpack(fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(_FLAGS.size)))[0])


def inode_flags(path: Path) -> int | None:
    """The directory's inode flags, or None where the filesystem has none."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _flags_of(fd)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return None
        raise
    finally:
        os.close(fd)


def mark_top_directory(path: Path) -> bool:
    """Set ``FS_TOPDIR_FL`` on the directory ``path``; whether it carries the flag now."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = _flags_of(fd)
        if not flags & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, _FLAGS.pack(flags | FS_TOPDIR_FL))
        return True
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return False
        raise
    finally:
        os.close(fd)
