"""Reading a whole file with plain system calls, no ``open()``.

Owned here: :func:`read_file`. Called by ``runtime.cgroups.fs`` (cgroupfs files, read often) and
``runtime.process.kernel`` (the container's ``/etc/passwd`` and ``/etc/group``, read by the init
between fork and exec, where io's layers and codec lookup touched ~20 pages more). Standard
library only: the fork server imports it.
"""

from __future__ import annotations

import os


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The whole contents of ``path`` (``OSError`` as ``os.open`` and ``os.read`` raise it)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
