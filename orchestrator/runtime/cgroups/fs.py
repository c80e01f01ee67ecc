"""The cgroup filesystem as the driver sees it: a handful of calls behind a Protocol.

``HostCgroupFs`` is the real thing (one ``write(2)`` per value, as cgroupfs wants); tests use
``fake.FakeCgroupFs``, which behaves like the kernel (interface files appear on mkdir, writes are
checked). Both raise plain ``OSError`` with the kernel's errno; ``map_os_error`` turns those into
orc's error tree at the driver boundary, naming the file and the value.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Protocol

from orchestrator.errors import OrcError, PermanentError, TemporaryError
from orchestrator.runtime.rawread import read_file


class CgroupFs(Protocol):
    """Directory and file operations on a cgroup filesystem."""

    def exists(self, path: Path) -> bool: ...

    def mkdir(self, path: Path) -> None:
        """Create one cgroup directory; raises FileExistsError if it exists."""

    def rmdir(self, path: Path) -> None: ...

    def read(self, path: Path) -> str: ...

    def write(self, path: Path, value: str) -> None:
        """Write ``value`` with a single write call (the kernel parses each write on its own)."""

    def listdir(self, path: Path) -> list[str]: ...


class HostCgroupFs:
    """The real cgroup filesystem."""

    def exists(self, path: Path) -> bool:
        return os.path.exists(path)

    def mkdir(self, path: Path) -> None:
        os.mkdir(path)

    def rmdir(self, path: Path) -> None:
        os.rmdir(path)

    def read(self, path: Path) -> str:
        return read_file(path).decode()

    def write(self, path: Path, value: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def listdir(self, path: Path) -> list[str]:
        return os.listdir(path)


def map_os_error(exc: OSError, action: str, path: Path, value: str | None = None) -> OrcError:
    """Turn a cgroupfs OSError into an orc error that says what was attempted where."""
    what = f"{action} {path}" + (f" = {value!r}" if value is not None else "")
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermanentError(f"cgroups: permission denied: {what} (needs root or a delegated cgroup)")
    if code == errno.ENOENT:
        return PermanentError(
            f"cgroups: {path} does not exist: {what} (controller not mounted or not enabled, "
            "or the kernel lacks this file)"
        )
    if code == errno.EBUSY:
        return TemporaryError(f"cgroups: busy: {what}", retry_after=0.1)
    if code in (errno.EAGAIN, errno.EINTR):
        return TemporaryError(f"cgroups: try again: {what}", retry_after=0.1)
    if code == errno.EINVAL:
        return PermanentError(f"cgroups: the kernel rejected {what}")
    if code == errno.ENOSPC:
        return PermanentError(f"cgroups: no space: {what} (empty cpuset, or a limit on cgroup count)")
    if code == errno.ENOTEMPTY:
        return TemporaryError(f"cgroups: not empty: {what}", retry_after=0.1)
    return PermanentError(f"cgroups: {what}: {exc.strerror or exc}")
