"""Where state records live: atomic JSON files under the runtime root, or memory for tests.

Owned here: the :class:`StateStore` protocol, :class:`FileStateStore` (one directory per project
under the runtime root, ``<root>/<project>/project.json`` and ``<root>/<project>/containers/<name>.json``,
each replaced atomically by ``orchestrator.swapfile`` (the new contents renamed over the old, from
a spare inode kept beside the file), so a killed writer leaves the old or the new file, never
half of one), :class:`MemoryStateStore` (the same behaviour in a dict) and the project
lock that serialises concurrent ``up``/``down`` of one project (``flock`` on
``<root>/.<project>.lock``, which is never deleted so that two processes always lock the same inode).

Called by the reconciler (observe, record transitions), the supervisor (adoption) and the CLI verbs
that only read (``ps``, ``ls``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from orchestrator.errors import PermanentError, TemporaryError
from orchestrator.state import projectlock
from orchestrator.state.records import ContainerRecord, ProjectRecord, StateVersionError
from orchestrator.swapfile import POOL_DIR, InodePool, inode_pool, remove, replace_contents


class ProjectBusyError(TemporaryError):
    """Another orc holds the project's lock (an ``up`` or ``down`` is running)."""


class StateStore(Protocol):
    """Persistent project and container records. Every method is safe to call without the lock;
    callers that read-modify-write hold :meth:`lock` around the sequence."""

    def list_projects(self) -> list[str]: ...
    def load_project(self, project: str) -> ProjectRecord | None: ...
    def save_project(self, record: ProjectRecord) -> None: ...
    def delete_project(self, project: str) -> None: ...
    def list_containers(self, project: str) -> list[ContainerRecord]: ...
    def load_container(self, project: str, name: str) -> ContainerRecord | None: ...
    def save_container(self, record: ContainerRecord) -> None: ...
    def delete_container(self, project: str, name: str) -> None: ...
    def lock(self, project: str, timeout: float = 0.0) -> contextlib.AbstractContextManager[None]: ...


def check_name(kind: str, name: str) -> str:
    """Refuse names that could escape the state directory or hide as dotfiles."""
    if not projectlock.SAFE_NAME.match(name) or len(name) > 200:
        raise PermanentError(f"invalid {kind} name {name!r} for a state file")
    return name


# One writer at a time per file (``swapfile`` reuses a spare inode per file): the records are
# written by one process, the project's supervisor, but from more than one thread.
_WRITING = threading.Lock()

# How often a record that does not parse is read again before it counts as corrupt: a reader
# that opened a record just before a write and read it only after the next one can catch the
# spare being rewritten (``swapfile``).
_READ_ATTEMPTS = 3


def write_json_atomic(path: Path, data: Any, pool: InodePool | None = None) -> None:
    """Write ``data`` as JSON to ``path`` so readers see the old or the new content, never a mix.

    No fsync: these records describe processes, namespaces and mounts that die with the kernel
    (the run root is ``/run/orc``, gone at reboot anyway), and a writer killed at any point
    leaves the old or the new file thanks to the rename. An fsync pair cost 0.3-8 ms per write
    here, on the event loop, twice per container start. No new inode per write either
    (``orchestrator.swapfile``)."""
    payload = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    try:
        with _WRITING:
            try:
                replace_contents(path, payload, pool=pool)
            except FileNotFoundError:  # the first write to a directory makes it (not a mkdir per write)
                path.parent.mkdir(parents=True, exist_ok=True)
                replace_contents(path, payload, pool=pool)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise TemporaryError(f"cannot write state file {path}: {exc.strerror}", retry_after=5.0) from exc
        raise PermanentError(f"cannot write state file {path}: {exc.strerror}") from exc


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if the file does not exist."""
    attempts = 1
    while True:
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PermanentError(f"cannot read state file {path}: {exc.strerror}") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            if attempts >= _READ_ATTEMPTS:
                raise StateVersionError(f"state file {path} is not valid JSON: {exc}") from exc
            attempts += 1
            continue
        break
    if not isinstance(data, dict):
        raise StateVersionError(f"state file {path} does not hold a JSON object")
    return data


class FileStateStore:
    """State records as JSON files under ``root`` (``/run/orc`` unless the CLI says otherwise)."""

    def __init__(
        self,
        root: Path,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = Path(root)
        # Container records come and go with every up and down: their files are kept for the
        # next ones (``swapfile.InodePool``).
        self._pool = inode_pool(self.root / POOL_DIR)
        self._sleep = sleep
        self._monotonic = monotonic

    def project_dir(self, project: str) -> Path:
        return self.root / check_name("project", project)

    def _container_path(self, project: str, name: str) -> Path:
        return self.project_dir(project) / "containers" / f"{check_name('container', name)}.json"

    def list_projects(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and not entry.name.startswith(".") and (entry / "project.json").exists()
        )

    def load_project(self, project: str) -> ProjectRecord | None:
        data = read_json(self.project_dir(project) / "project.json")
        return None if data is None else ProjectRecord.from_json(data)

    def save_project(self, record: ProjectRecord) -> None:
        write_json_atomic(self.project_dir(record.name) / "project.json", record.to_json())

    def delete_project(self, project: str) -> None:
        import shutil  # here only: with bz2 and lzma it was ~2-3 ms of every CLI command's start

        directory = self.project_dir(project)
        try:
            shutil.rmtree(directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise PermanentError(f"cannot remove state directory {directory}: {exc.strerror}") from exc

    def list_containers(self, project: str) -> list[ContainerRecord]:
        directory = self.project_dir(project) / "containers"
        if not directory.is_dir():
            return []
        records = []
        for path in sorted(directory.glob("*.json")):
            if path.name.startswith("."):
                continue
            data = read_json(path)
            if data is not None:
                records.append(ContainerRecord.from_json(data))
        return records

    def load_container(self, project: str, name: str) -> ContainerRecord | None:
        data = read_json(self._container_path(project, name))
        return None if data is None else ContainerRecord.from_json(data)

    def save_container(self, record: ContainerRecord) -> None:
        write_json_atomic(self._container_path(record.project, record.name), record.to_json(), self._pool)

    def delete_container(self, project: str, name: str) -> None:
        remove(self._container_path(project, name), self._pool)

    @contextlib.contextmanager
    def lock(self, project: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold the project's exclusive lock; wait up to ``timeout`` seconds for it.

        Raises :class:`ProjectBusyError` naming the holder's pid if it stays taken.
        """
        fd = projectlock.open_lock(self.root, check_name("project", project))
        try:
            deadline = self._monotonic() + timeout
            while not projectlock.try_take(fd):
                if self._monotonic() >= deadline:
                    raise ProjectBusyError(
                        f"project {project} is busy: another orc (pid {projectlock.holder(fd)}) is changing it",
                        retry_after=0.5,
                    )
                self._sleep(0.02)
            try:
                yield
            finally:
                projectlock.release(fd)
        finally:
            os.close(fd)


class MemoryStateStore:
    """The in-memory twin of :class:`FileStateStore`: same records, same JSON round trip (so a
    record that would not survive the file store does not survive here either), same lock rules."""

    def __init__(self) -> None:
        self._projects: dict[str, dict[str, Any]] = {}
        self._containers: dict[str, dict[str, dict[str, Any]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.writes = 0

    def list_projects(self) -> list[str]:
        return sorted(self._projects)

    def load_project(self, project: str) -> ProjectRecord | None:
        data = self._projects.get(check_name("project", project))
        return None if data is None else ProjectRecord.from_json(json.loads(json.dumps(data)))

    def save_project(self, record: ProjectRecord) -> None:
        self._projects[check_name("project", record.name)] = json.loads(json.dumps(record.to_json()))
        self.writes += 1

    def delete_project(self, project: str) -> None:
        self._projects.pop(project, None)
        self._containers.pop(project, None)

    def list_containers(self, project: str) -> list[ContainerRecord]:
        by_name = self._containers.get(project, {})
        return [ContainerRecord.from_json(json.loads(json.dumps(by_name[n]))) for n in sorted(by_name)]

    def load_container(self, project: str, name: str) -> ContainerRecord | None:
        data = self._containers.get(project, {}).get(name)
        return None if data is None else ContainerRecord.from_json(json.loads(json.dumps(data)))

    def save_container(self, record: ContainerRecord) -> None:
        check_name("container", record.name)
        self._containers.setdefault(check_name("project", record.project), {})[record.name] = json.loads(
            json.dumps(record.to_json())
        )
        self.writes += 1

    def delete_container(self, project: str, name: str) -> None:
        self._containers.get(project, {}).pop(name, None)

    @contextlib.contextmanager
    def lock(self, project: str, timeout: float = 0.0) -> Iterator[None]:
        with self._guard:
            project_lock = self._locks.setdefault(check_name("project", project), threading.Lock())
        acquired = project_lock.acquire(timeout=timeout) if timeout > 0 else project_lock.acquire(False)
        if not acquired:
            raise ProjectBusyError(f"project {project} is busy: another orc is changing it", retry_after=0.5)
        try:
            yield
        finally:
            project_lock.release()
