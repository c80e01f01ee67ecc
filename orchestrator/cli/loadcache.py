"""The lifecycle verbs' memory of a project loaded from the same inputs: the loader's result
reused while nothing it read has changed.

Owned here: :class:`RecordingFileSource` (wraps the real FileSource and notes every answer the
loader got: each file read, with a digest of its text, each existence, directory and listing
check, each resolved path), :func:`cache_key` and :func:`lookup`/:func:`store`. Called by
``cli.project.load_project_from_cli`` for the verbs that go to the supervisor (``up``, ``down``,
``stop``... through ``cli.lifecycle.project_handle``); ``orc config`` and the image verbs always
load.

The loader is pure: it reads files only through its FileSource and the environment only from the
mapping it is given. So its result is determined by the key (this orc's loader code, the working
directory, the whole environment and the options) plus the answers it got from the FileSource.
An entry is reused only when the key matches and every recorded answer is still the same (a
file's content, by SHA-256; an ``exists`` still true or still false, so a new override file or
``.env`` is seen); otherwise the files are loaded again and the entry replaced. A hit skips importing the loader, YAML and the schema and loading itself, most of a
no-op ``up``. Entries are pickles of the loaded project in a root-only directory under the run
root, at most :data:`MAX_ENTRIES`; anything unreadable there is a miss.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.hashing import sha256_hex
from orchestrator.hostfs import HostFileSource
from orchestrator.stack.project import Project, SourcePositions

MAX_ENTRIES = 64
_FORMAT = 1
_LOADER_CODE = Path(__file__).resolve().parent.parent / "stack"


def _digest(text: str) -> str:
    return sha256_hex(text.encode("utf-8", "surrogatepass"))


class RecordingFileSource:
    """A FileSource that notes what it answered (``answers``), for :func:`store`."""

    def __init__(self, inner: Any | None = None) -> None:
        self.inner = inner or HostFileSource()
        self.answers: list[tuple[str, str, Any]] = []

    def read_text(self, path: str) -> str:
        text = str(self.inner.read_text(path))
        self.answers.append(("read", path, _digest(text)))
        return text

    def exists(self, path: str) -> bool:
        answer = bool(self.inner.exists(path))
        self.answers.append(("exists", path, answer))
        return answer

    def is_dir(self, path: str) -> bool:
        answer = bool(self.inner.is_dir(path))
        self.answers.append(("is_dir", path, answer))
        return answer

    def list_dir(self, path: str) -> list[str]:
        answer = list(self.inner.list_dir(path))
        self.answers.append(("list_dir", path, answer))
        return answer

    def real_path(self, path: str) -> str:
        answer = str(self.inner.real_path(path))
        self.answers.append(("real_path", path, answer))
        return answer


def _still(kind: str, path: str, answer: Any) -> bool:
    """Whether the FileSource would answer the same now."""
    try:
        if kind == "read":
            # The content itself, not its times: a file rewritten within the same clock tick
            # with the same size has the same times. Reading a Compose file is cheap; parsing
            # it is what a hit saves.
            return _digest(HostFileSource().read_text(path)) == answer
        if kind == "exists":
            return os.path.exists(path) == answer
        if kind == "is_dir":
            return os.path.isdir(path) == answer
        if kind == "list_dir":
            return sorted(os.listdir(path)) == answer
        if kind == "real_path":
            return os.path.realpath(path) == answer
    except (OSError, UnicodeDecodeError):
        return False
    return False


def _loader_code() -> list[Any]:
    """The loader's own files (and its schema), by name, size and modification time: an orc
    that loads differently never reuses an entry another made."""
    found = []
    for directory, _dirs, names in sorted(os.walk(_LOADER_CODE)):
        for name in sorted(names):
            if name.endswith((".py", ".json")):
                st = os.stat(os.path.join(directory, name))
                found.append(
                    [os.path.relpath(os.path.join(directory, name), _LOADER_CODE), st.st_size, st.st_mtime_ns]
                )
    return found


def cache_key(
    cwd: str,
    environ: Mapping[str, str],
    options: Mapping[str, Any],
) -> str:
    """What besides the files decides the loader's result: its code, the working directory,
    the environment (all of it) and the loader options (``-f``, ``-p``, profiles...)."""
    data = {
        "format": _FORMAT,
        "code": _loader_code(),
        "cwd": cwd,
        "environ": sorted(environ.items()),
        "options": {
            k: list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
            for k, v in options.items()
        },
    }
    return sha256_hex(json.dumps(data, sort_keys=True).encode())


def lookup(directory: Path, key: str) -> Project | None:
    """The project stored under ``key``, if every answer it was loaded from still holds."""
    try:
        with open(directory / f"{key}.pickle", "rb") as f:
            entry = pickle.load(f)
        answers, project = entry["answers"], entry["project"]
    except Exception:  # missing, unreadable or from another orc: load the files
        return None
    if not isinstance(project, Project) or not all(_still(*answer) for answer in answers):
        return None
    return project


def store(directory: Path, key: str, answers: list[tuple[str, str, Any]], project: Project) -> None:
    """Keep ``project`` under ``key`` (quietly nothing where the directory cannot be written)."""
    # Kept: the positions that locate errors found after loading (a dependency cycle...). Not
    # kept: the bound model (made again on demand) and the loader's state around them.
    locator = project._locator
    positions = SourcePositions(locator.positions) if isinstance(locator, SourcePositions) else None
    kept = replace(project, _stack=None, _locator=positions)
    with contextlib.suppress(OSError, pickle.PicklingError, TypeError, AttributeError):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = directory / f".{key}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            pickle.dump({"answers": answers, "project": kept}, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, directory / f"{key}.pickle")
        _prune(directory)


def _prune(directory: Path) -> None:
    entries = sorted(directory.glob("*.pickle"), key=lambda p: p.stat().st_mtime_ns)
    for old in entries[:-MAX_ENTRIES]:
        with contextlib.suppress(OSError):
            old.unlink()
