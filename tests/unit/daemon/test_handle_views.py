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
