"""A handle on one project: the same calls the CLI verbs make, usable from Python.

Owned here: :class:`Roots` (``/run/orc`` + ``/var/lib/orc``, or ``DIR/run`` + ``DIR/lib`` with
``--root``), :class:`ProjectHandle` (find or start the project's supervisor and send it requests;
read state and logs directly from disk for ``ps`` and ``logs``, which need no supervisor) and
:class:`LoadRequest` (what the supervisor needs to load the same Compose files the CLI loaded).
Called by ``orchestrator.cli.verb_*``; usable from Python and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.daemon.client import (
    SupervisorUnreachable,
    call,
    running_supervisor,
    spawn_supervisor,
    start_supervisor,
    wait_gone,
)
from orchestrator.daemon.spawn import roots_for
from orchestrator.errors import NotFoundError, UsageError
from orchestrator.state.proc import same_process
from orchestrator.state.records import ContainerRecord
from orchestrator.state.store import FileStateStore


@dataclass(frozen=True)
class Roots:
    """Where orc keeps a project's runtime state (``run``) and its lasting data (``lib``)."""

    run: Path
    lib: Path

    @classmethod
    def from_option(cls, root: str | None) -> Roots:
        return cls(*roots_for(root))


@dataclass(frozen=True)
class LoadRequest:
    """The loader's inputs as the CLI saw them (sent to the supervisor, which reloads)."""

    cwd: str
    environ: dict[str, str]
    files: list[str] = field(default_factory=list)
    project_name: str | None = None
    project_directory: str | None = None
    profiles: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    home: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _source(load: LoadRequest | dict[str, Any] | None) -> dict[str, Any]:
    """The request fields naming the project's definition: the loader's inputs (the supervisor
    loads the files) or, faster, the document the caller already loaded (``project``)."""
    if load is None:
        return {}
    if isinstance(load, LoadRequest):
        return {"load": load.to_json()}
    return {"project": load}


class ProjectHandle:
    def __init__(
        self, roots: Roots, name: str, cgroup_prefix: str = "orc", parallel: int | None = None
    ) -> None:
        self.roots = roots
        self.name = name
        self.cgroup_prefix = cgroup_prefix
        # `--parallel`: the most driver calls the supervisor makes at once for our requests
        self.parallel = parallel
        self.store = FileStateStore(roots.run)

    # --- supervisor --------------------------------------------------------------------------

    def supervisor(self) -> Path | None:
        return running_supervisor(self.roots.run, self.name)

    def ensure_supervisor(self) -> Path:
        path = self.supervisor()
        if path is not None:
            return path
        with self.store.lock(self.name, timeout=30.0):
            path = self.supervisor()
            if path is None:
                path = spawn_supervisor(self.roots.run, self.roots.lib, self.name, self.cgroup_prefix)
        return path

    def begin_supervisor(self) -> Callable[[], Path] | None:
        """Start the supervisor without waiting for it (None if one runs already); the returned
        call waits until it listens. The project lock is held until then."""
        if self.supervisor() is not None:
            return None
        lock = self.store.lock(self.name, timeout=30.0)
        lock.__enter__()
        try:
            if self.supervisor() is not None:
                lock.__exit__(None, None, None)
                return None
            waiting = start_supervisor(self.roots.run, self.roots.lib, self.name, self.cgroup_prefix)
        except BaseException:
            lock.__exit__(None, None, None)
            raise

        def finish() -> Path:
            try:
                return waiting()
            finally:
                lock.__exit__(None, None, None)

        return finish

    def request(
        self,
        op: str,
        *,
        start: bool = False,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        pass_fds: tuple[int, int, int] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        if self.parallel is not None:
            fields.setdefault("parallel", self.parallel)
        for attempt in (1, 2):
            path = self.ensure_supervisor() if start else self.supervisor()
            if path is None:
                raise NotFoundError(f"project {self.name} has no running supervisor (is it up?)")
            try:
                return call(path, op, on_event=on_event, pass_fds=pass_fds, **fields)
            except SupervisorUnreachable:
                # Its process still runs but nothing listens: it is exiting (it failed, or a
                # `down` just ended it). Nothing was sent; ask the next one, once it is gone.
                if attempt == 2:
                    raise
                wait_gone(self.roots.run, self.name)
        raise AssertionError("unreachable")  # pragma: no cover

    def up(
        self,
        load: LoadRequest | dict[str, Any],
        services: Sequence[str] = (),
        options: dict[str, Any] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        return self.request(
            "up",
            start=True,
            on_event=on_event,
            **_source(load),
            services=list(services),
            options=options or {},
        )

    def down(
        self,
        load: LoadRequest | dict[str, Any] | None,
        options: dict[str, Any] | None = None,
        timeout: float | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        if self.supervisor() is None and not self.store.list_containers(self.name):
            record = self.store.load_project(self.name)
            if record is None or not record.networks:
                return {"done": [], "failed": {}, "skipped": {}, "warnings": []}
        result = self.request(
            "down",
            start=True,
            on_event=on_event,
            **_source(load),
            options=options or {},
            timeout=timeout,
        )
        wait_gone(self.roots.run, self.name)
        return result

    # --- read-only views ---------------------------------------------------------------------

    def containers(self, include_stopped: bool = True) -> list[ContainerRecord]:
        """The project's containers as recorded, a recorded process that is gone shown as
        exited; except ``restarting`` (between two runs its process is gone by definition)
        while the supervisor that will start it again runs."""
        records = []
        supervised: bool | None = None
        for record in self.store.list_containers(self.name):
            if record.status == "restarting":
                if supervised is None:
                    supervised = self.supervisor() is not None
                if supervised:
                    records.append(record)
                    continue
            if record.status in ("running", "restarting", "paused") and not (
                record.pid is not None
                and record.pid_start_time is not None
                and same_process(record.pid, record.pid_start_time)
            ):
                record.status = "exited"
            if include_stopped or record.status in ("running", "restarting", "paused"):
                records.append(record)
        return records

    def container_for(self, service: str, index: int = 1) -> ContainerRecord:
        for record in self.containers():
            if record.service == service and record.number == index and not record.one_off:
                return record
        known = sorted({r.service for r in self.containers()})
        if service not in known:
            raise UsageError(
                f"service {service!r} has no containers (services with containers: {', '.join(known) or 'none'})"
            )
        raise NotFoundError(f"service {service} has no container number {index}")

    def log_sources(self, services: Sequence[str] = (), index: int | None = None) -> list[tuple[str, Path]]:
        """``(prefix, log file)`` of the containers of ``services`` (all when empty); with
        ``index`` only replica number ``index`` of each (one-offs have none)."""
        sources = []
        for record in self.containers():
            if services and record.service not in services:
                continue
            if index is not None and (record.one_off or record.number != index):
                continue
            if record.log_path:
                sources.append(
                    (
                        f"{record.service}-{record.number}" if not record.one_off else record.name,
                        Path(record.log_path),
                    )
                )
        return sources
