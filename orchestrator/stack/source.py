"""PURE. The FileSource protocol: how the loader reads files without touching the disk itself.

Owns the protocol and an in-memory implementation for tests. The real-disk implementation is
:class:`orchestrator.hostfs.HostFileSource`; the CLI (``orchestrator.cli.project``) builds it and
passes it to :func:`orchestrator.stack.loader.load`. All paths are absolute POSIX paths; the
loader joins and normalises them with :mod:`posixpath`, so it never depends on the process cwd.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class FileSource(Protocol):
    """Read-only access to files by absolute path."""

    def read_text(self, path: str) -> str:
        """The file's text (UTF-8). Raises FileNotFoundError, IsADirectoryError, or OSError."""
        ...

    def exists(self, path: str) -> bool: ...

    def is_dir(self, path: str) -> bool: ...

    def list_dir(self, path: str) -> list[str]:
        """Names (not paths) of the entries of a directory, sorted."""
        ...

    def real_path(self, path: str) -> str:
        """The path with symbolic links resolved (the path itself where there are none)."""
        ...


class MemoryFileSource:
    """A FileSource over a dict of absolute path → text. Directories are implied by the paths."""

    def __init__(self, files: Mapping[str, str], directories: tuple[str, ...] = ()) -> None:
        self.files = {posixpath.normpath(k): v for k, v in files.items()}
        self.dirs: set[str] = {"/"}
        for path in (*self.files, *directories):
            d = posixpath.dirname(path) if path in self.files else posixpath.normpath(path)
            while d not in self.dirs:
                self.dirs.add(d)
                d = posixpath.dirname(d)
        self.reads: list[str] = []

    def read_text(self, path: str) -> str:
        path = posixpath.normpath(path)
        if path in self.dirs:
            raise IsADirectoryError(path)
        if path not in self.files:
            raise FileNotFoundError(path)
        self.reads.append(path)
        return self.files[path]

    def exists(self, path: str) -> bool:
        path = posixpath.normpath(path)
        return path in self.files or path in self.dirs

    def is_dir(self, path: str) -> bool:
        return posixpath.normpath(path) in self.dirs

    def list_dir(self, path: str) -> list[str]:
        path = posixpath.normpath(path)
        names = {
            posixpath.relpath(p, path).split("/", 1)[0]
            for p in (*self.files, *self.dirs)
            if p != path and p.startswith(path.rstrip("/") + "/")
        }
        return sorted(names)

    def real_path(self, path: str) -> str:
        return posixpath.normpath(path)
