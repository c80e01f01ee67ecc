"""What ``ps`` reads without the supervisor: recorded states checked against /proc."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.daemon.handle import ProjectHandle, Roots
from orchestrator.daemon.protocol import socket_path
from orchestrator.state.proc import pid_start_time
from orchestrator.state.records import ContainerRecord, ProjectRecord
from orchestrator.state.store import FileStateStore


def _record(status: str, pid: int | None) -> ContainerRecord:
    return ContainerRecord(
        project="demo",
        name=f"demo-{status}-1",
        service=status,
        number=1,
        container_id="c" * 64,
        config_hash="h",
        status=status,
        pid=pid,
        pid_start_time=pid_start_time(pid) if pid else 12345,
    )


def test_restarting_stays_restarting_while_the_supervisor_runs(tmp_path: Path) -> None:
    roots = Roots(tmp_path / "run", tmp_path / "lib")
    store = FileStateStore(roots.run)
    dead = 2**22 + 17  # above pid_max's default: no such process
    for record in (_record("restarting", dead), _record("running", dead), _record("paused", os.getpid())):
        store.save_container(record)
    handle = ProjectHandle(roots, "demo")
    # no supervisor: a recorded process that is gone is shown as exited, whatever the record says
    assert {r.service: r.status for r in handle.containers()} == {
        "restarting": "exited",
        "running": "exited",
        "paused": "paused",
    }
    # a live supervisor (this process stands in for it) will start the restarting one again
    path = socket_path(roots.run, "demo")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    store.save_project(
        ProjectRecord(
            name="demo", supervisor_pid=os.getpid(), supervisor_start_time=pid_start_time(os.getpid())
        )
    )
    assert {r.service: r.status for r in handle.containers()} == {
        "restarting": "restarting",
        "running": "exited",
        "paused": "paused",
    }
    assert sorted(r.service for r in handle.containers(include_stopped=False)) == ["paused", "restarting"]


def test_a_request_refused_by_an_exiting_supervisor_waits_for_it_and_asks_again(tmp_path: Path) -> None:
    """Its process still runs and its socket file is there, but nothing listens (it failed and
    is shutting down): the request is not lost to 'connection refused'."""
    import socket
    import subprocess
    import sys

    import pytest

    from orchestrator.errors import NotFoundError

    roots = Roots(tmp_path / "run", tmp_path / "lib")
    store = FileStateStore(roots.run)
    exiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    try:
        path = socket_path(roots.run, "demo")
        path.parent.mkdir(parents=True, exist_ok=True)
        bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound.bind(str(path))  # never listens: a connect is refused
        store.save_project(
            ProjectRecord(
                name="demo", supervisor_pid=exiting.pid, supervisor_start_time=pid_start_time(exiting.pid)
            )
        )
        handle = ProjectHandle(roots, "demo")
        assert handle.supervisor() == path
        # Once it is gone there is no supervisor to ask (a `start=True` request would start one).
        with pytest.raises(NotFoundError, match="no running supervisor"):
            handle.request("ps")
        assert exiting.poll() is not None  # it waited for the process to end
        bound.close()
    finally:
        exiting.kill()
        exiting.wait()
