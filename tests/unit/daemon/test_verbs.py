"""The read-only lifecycle verbs (plan, ps, logs) on recorded state, without root or a supervisor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.cli.verb_logs import parse_when
from orchestrator.state.logs import LogWriter
from orchestrator.state.proc import pid_start_time
from orchestrator.state.records import ContainerRecord, ProjectRecord
from orchestrator.state.store import FileStateStore

COMPOSE = """
name: demo
services:
  db:
    image: busybox:1
    x-orc: {rootfs: ./rootfs}
    environment: {A: "1"}
  web:
    image: busybox:1
    x-orc: {rootfs: ./rootfs}
    depends_on: {db: {condition: service_started}}
"""


def orc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "--root", str(project / "root"), *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "ORC_ROOT"},
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def record(project: Path, service: str, **changes: object) -> ContainerRecord:
    rec = ContainerRecord(
        project="demo",
        name=f"demo-{service}-1",
        service=service,
        number=1,
        container_id=service * 8,
        config_hash="old",
        image=f"rootfs:{project / 'rootfs'}",
        status="exited",
        exit_code=0,
        created_at=time.time(),
        finished_at=time.time(),
        log_path=str(project / "root" / "lib" / "logs" / f"{service}.log"),
    )
    for key, value in changes.items():
        setattr(rec, key, value)
    FileStateStore(project / "root" / "run").save_container(rec)
    return rec


def test_plan_from_nothing(project: Path) -> None:
    result = orc(project, "plan")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "project demo: 5 actions in 3 waves\n"
        "wave 1\n"
        "  create-network demo_default: missing\n"
        "  create demo-db-1: new service\n"
        "  create demo-web-1: new service\n"
        "wave 2\n"
        "  start demo-db-1: created\n"
        "wave 3\n"
        "  start demo-web-1: created; waits for db started\n"
    )
    assert orc(project, "up", "--dry-run").stdout == result.stdout


def test_plan_names_the_changed_key(project: Path) -> None:
    FileStateStore(project / "root" / "run").save_project(
        ProjectRecord(name="demo", networks=[], created_at=time.time())
    )
    web_hash = orc(project, "config", "--hash", "web").stdout.split()[-1]
    record(project, "db", config_hash="stale", config={"environment": {"A": "0"}, "image": "busybox:1"})
    record(project, "web", status="exited", exit_code=3, config_hash=web_hash)
    text = orc(project, "plan").stdout
    assert "recreate demo-db-1: config changed: environment.A\n" in text, text
    assert "start demo-web-1: exited (3); waits for db started" in text


def test_ps_table_json_and_liveness(project: Path) -> None:
    alive = record(
        project,
        "db",
        status="running",
        pid=os.getpid(),
        pid_start_time=pid_start_time(os.getpid()),
        started_at=time.time(),
    )
    record(
        project, "web", status="running", pid=2**22 + 7, pid_start_time=1
    )  # recorded running, process gone
    table = orc(project, "ps", "-a").stdout.splitlines()
    assert table[0].split() == ["NAME", "IMAGE", "SERVICE", "STATUS", "PORTS"]
    assert "Up" in table[1] and table[1].startswith(alive.name)
    assert "Exited" in table[2]
    running = [json.loads(line) for line in orc(project, "ps", "--format", "json").stdout.splitlines()]
    assert [(r["Name"], r["State"]) for r in running] == [("demo-db-1", "running")]
    assert orc(project, "ps", "-q").stdout.split() == [alive.container_id]
    assert orc(project, "ps", "--format", "yaml").returncode == 2


def test_logs_merge_tail_and_prefix(project: Path) -> None:
    for service in ("db", "web"):
        rec = record(project, service)
        assert rec.log_path is not None
        clock = iter(range(1_764_000_000_000_000_000 + (service == "web") * 500, 2**62, 1000))
        writer = LogWriter(Path(rec.log_path), clock_ns=lambda c=clock: next(c))  # type: ignore[misc]
        writer.write("stdout", f"{service} one\n".encode())
        writer.write("stdout", f"{service} two\n".encode())
        writer.close()
    out = orc(project, "logs").stdout
    assert out == "db-1  | db one\nweb-1 | web one\ndb-1  | db two\nweb-1 | web two\n"
    assert orc(project, "logs", "--tail", "1", "--no-log-prefix", "web").stdout == "web two\n"
    stamped = orc(project, "logs", "-t", "--tail", "1", "db").stdout
    assert stamped == "db-1 | 2025-11-24T16:00:00.000001000Z db two\n"


def test_parse_when() -> None:
    now = 1_764_000_000.0
    assert parse_when("2025-11-24T16:00:00Z", now) == 1_764_000_000_000_000_000
    assert parse_when("1764000000", now) == 1_764_000_000_000_000_000
    assert parse_when("10m", now) == int((now - 600) * 1e9)
    assert parse_when(None, now) is None


def test_ls_lists_recorded_projects(project: Path) -> None:
    FileStateStore(project / "root" / "run").save_project(
        ProjectRecord(name="demo", config_files=[str(project / "compose.yaml")], created_at=time.time())
    )
    record(project, "db", status="running", pid=os.getpid(), pid_start_time=pid_start_time(os.getpid()))
    record(project, "web")
    assert orc(project, "ls").stdout.splitlines()[1].split() == [
        "demo",
        "exited(1),",
        "running(1)",
        str(project / "compose.yaml"),
    ]
    assert orc(project, "ls", "-q").stdout == "demo\n"
    FileStateStore(project / "root" / "run").delete_container("demo", "demo-db-1")
    assert orc(project, "ls", "-q").stdout == ""  # nothing running
    assert json.loads(orc(project, "ls", "-a", "--format", "json").stdout)[0]["Status"] == "exited(1)"
