"""A supervisor serving its control socket over a recording fake runtime, for tests without root.

Owned here: ``serve_supervisor`` runs :class:`orchestrator.daemon.supervisor.Supervisor` for one
project on ``tmp_path/run`` and ``tmp_path/lib`` with the given runtime, calls ``script`` with the
socket's path from a worker thread, then stops the supervisor. Used by tests/unit/daemon/* and
tests/integration/images/test_lock_wiring.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio

from orchestrator.daemon.supervisor import Supervisor, socket_path
from orchestrator.reconciler.fake import FakeRuntime


def serve_supervisor(
    tmp_path: Path,
    runtime: FakeRuntime,
    script: Callable[[Path], None],
    project: str = "demo",
    crash: Callable[[], None] | None = None,
) -> Supervisor:
    """Serve ``project`` with ``runtime`` until ``script(socket path)`` returns (20 s at most)."""

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[FakeRuntime]:
        yield runtime

    supervisor = Supervisor(project, tmp_path / "run", tmp_path / "lib", factory, crash=crash)

    async def main() -> None:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                ready = anyio.Event()
                group.start_soon(supervisor.serve, ready.set)
                await ready.wait()
                await anyio.to_thread.run_sync(script, socket_path(tmp_path / "run", project))
                supervisor._done.set()

    anyio.run(main)
    return supervisor
