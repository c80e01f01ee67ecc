"""What a supervisor killed with SIGKILL must not lose, tested without root: the kill hook that
the kernel durability tests drive, and the unfinished log line a killed log writer leaves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.daemon.client import call
from orchestrator.reconciler.clock import SystemClock
from orchestrator.reconciler.fake import FakeRuntime
from orchestrator.state.logs import LogWriter, container_entries
from tests.support.supervised import serve_supervisor
from tests.unit.daemon.test_supervisor import COMPOSE, load_request


def test_kill_hook_fires_once_after_the_given_number_of_actions(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    runtime = FakeRuntime(SystemClock(), images={"busybox:1": "sha256:b1"})
    crashes: list[list[str]] = []

    def crash() -> None:
        # What had happened when the supervisor would have died: the containers created so far.
        crashes.append(sorted(runtime.containers))

    results: list[dict[str, Any]] = []

    def script(path: Path) -> None:
        options = {"test_kill_after_actions": 2}
        results.append(call(path, "up", load=load_request(tmp_path), options=options))
        results.append(call(path, "down", load=load_request(tmp_path)))

    serve_supervisor(tmp_path, runtime, script, crash=crash)
    # Two creates are the first two actions (the network's creation is no plan action event).
    assert crashes == [["demo-db-1", "demo-web-1"]]
    assert "start demo-web-1" in results[0]["done"]  # without a real kill, up goes on


def test_an_unfinished_line_survives_a_killed_writer(tmp_path: Path) -> None:
    path = tmp_path / "web-1.log"
    first = LogWriter(path, clock_ns=lambda: 1)
    first.write("stdout", b"one\ntw")
    first.write("stderr", b"err")
    # The supervisor dies here (no close): "tw" and "err" were read from the pipes but not logged.
    second = LogWriter(path, clock_ns=lambda: 2)
    second.write("stdout", b"o\nthree\n")
    second.write("stderr", b"or\n")
    second.close()
    lines = [(e.stream, e.text) for e in container_entries(path)]
    assert lines == [("stdout", "one\n"), ("stdout", "two\n"), ("stdout", "three\n"), ("stderr", "error\n")]
    assert not (tmp_path / "web-1.log.partial").exists()


def test_the_partial_file_exists_only_while_a_line_is_unfinished(tmp_path: Path) -> None:
    path = tmp_path / "web-1.log"
    partial = tmp_path / "web-1.log.partial"
    writer = LogWriter(path)
    writer.write("stdout", b"done\n")
    assert not partial.exists()
    writer.write("stdout", b"half")
    assert json.loads(partial.read_text()) == {"stdout": "half"}
    writer.write("stdout", b"-way\n")
    assert not partial.exists()
    writer.write("stdout", b"cut")
    writer.close()
    assert not partial.exists()
    assert [e.text for e in container_entries(path)] == ["done\n", "half-way\n", "cut"]
