"""The supervisor's control protocol, on the recording fake runtime (no root, no kernel)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestrator.daemon import protocol
from orchestrator.daemon.client import SupervisorError, call
from orchestrator.daemon.supervisor import Arguments, Supervisor, _with_queued, parse_arguments, socket_path
from orchestrator.errors import UsageError
from orchestrator.reconciler.clock import SystemClock
from orchestrator.reconciler.events import Event, EventBus
from orchestrator.reconciler.fake import FakeRuntime
from tests.support.supervised import serve_supervisor

COMPOSE = """
name: demo
services:
  db:
    image: busybox:1
    command: ["sleep", "1000"]
  web:
    image: busybox:1
    depends_on: [db]
    command: ["sleep", "1000"]
"""


def load_request(directory: Path) -> dict[str, Any]:
    return {"cwd": str(directory), "environ": {}, "files": [], "profiles": [], "env_files": []}


def run_supervised(tmp_path: Path, script: Any) -> FakeRuntime:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    runtime = FakeRuntime(SystemClock(), images={"busybox:1": "sha256:b1"})
    serve_supervisor(tmp_path, runtime, script)
    return runtime


def test_up_ps_exec_down_over_the_socket(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []

    def script(path: Path) -> None:
        assert call(path, "ping")["project"] == "demo"
        result = call(path, "up", on_event=events.append, load=load_request(tmp_path), options={})
        assert result["failed"] == {} and "start demo-web-1" in result["done"]
        record = json.loads((tmp_path / "run" / "demo" / "containers" / "demo-web-1.json").read_text())
        assert record["status"] == "running"
        assert call(path, "exec", container="demo-web-1", argv=["true"])["exit_code"] == 0
        stopped = call(path, "stop", services=["web"])
        assert stopped["done"] == ["stop demo-web-1"]
        with pytest.raises(SupervisorError, match="not running"):
            call(path, "exec", container="demo-web-1", argv=["true"])
        assert call(path, "start", services=["web"], load=load_request(tmp_path))["done"] == [
            "start demo-web-1"
        ]
        down = call(path, "down", load=load_request(tmp_path))
        assert sorted(down["done"])[:2] == ["remove demo-db-1", "remove demo-web-1"]

    runtime = run_supervised(tmp_path, script)
    assert ("container", "start") in {(e["type"], e["action"]) for e in events}
    assert runtime.containers == {}
    assert not socket_path(tmp_path / "run", "demo").exists()
    assert not (tmp_path / "run" / "demo").exists()


def test_an_up_that_changed_something_writes_back_its_filesystems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written_back: list[tuple[Path, ...]] = []
    monkeypatch.setattr(
        "orchestrator.daemon.supervisor.write_back_in_background",
        lambda paths: written_back.append(tuple(paths)),
    )

    def script(path: Path) -> None:
        call(path, "up", load=load_request(tmp_path), options={})
        assert written_back == [(tmp_path / "lib", tmp_path / "run")]
        call(path, "up", load=load_request(tmp_path), options={})  # nothing to do: nothing written
        assert len(written_back) == 1
        call(path, "down", load=load_request(tmp_path))
        assert len(written_back) == 1

    run_supervised(tmp_path, script)


def test_errors_and_versions(tmp_path: Path) -> None:
    def script(path: Path) -> None:
        with pytest.raises(SupervisorError, match="unknown request"):
            call(path, "dance")
        with pytest.raises(SupervisorError, match="up needs the project's files"):
            call(path, "up")
        import socket

        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            sock.sendall(b'{"v": 2, "op": "ping"}\n')
            answer = protocol.decode(sock.makefile("rb").readline())
        assert answer["ok"] is False and "protocol version 2" in answer["error"]

    run_supervised(tmp_path, script)


def test_protocol_round_trip() -> None:
    line = protocol.encode({"op": "up", "services": ["web"]})
    assert line.endswith(b"\n") and protocol.decode(line) == {"v": 1, "op": "up", "services": ["web"]}
    with pytest.raises(protocol.ProtocolError, match="not a JSON line"):
        protocol.decode(b"nope")
    with pytest.raises(protocol.ProtocolError, match="JSON object"):
        protocol.decode(b"[1]")


def test_event_bus_fans_out_and_drops_oldest_for_slow_subscribers() -> None:
    async def main() -> None:
        bus = EventBus(buffer=2)
        async with bus.subscribe() as fast, bus.subscribe() as slow:
            for i in range(3):
                bus.publish(Event(float(i), "container", "start", f"c{i}"))
            assert [fast.receive_nowait().name for _ in range(2)] == ["c1", "c2"]
            assert [slow.receive_nowait().name for _ in range(2)] == ["c1", "c2"]
            assert bus.dropped() == 2
        bus.publish(Event(9.0, "container", "die", "late"))  # no subscribers left: nothing breaks

    anyio.run(main)


def test_event_bus_end_delivers_what_is_queued_then_ends_the_stream() -> None:
    async def main() -> None:
        bus = EventBus()
        async with bus.subscribe() as events, bus.subscribe() as other:
            for i in range(3):
                bus.publish(Event(float(i), "container", "start", f"c{i}"))
            bus.end(events)
            bus.publish(Event(9.0, "container", "die", "late"))  # after the end: not for it
            assert [item.name async for item in events] == ["c0", "c1", "c2"]
            assert [other.receive_nowait().name for _ in range(4)] == ["c0", "c1", "c2", "late"]

    anyio.run(main)


def test_events_queued_behind_one_go_to_the_client_with_it() -> None:
    """A client gets the events already queued in one write, not one write (and wake-up) each."""

    async def main() -> None:
        bus = EventBus()
        async with bus.subscribe() as events:
            for i in range(3):
                bus.publish(Event(float(i), "container", "stop", f"c{i}"))
            first = await events.receive()
            assert [e.name for e in _with_queued(first, events)] == ["c0", "c1", "c2"]
            bus.publish(Event(3.0, "container", "destroy", "c3"))
            bus.end(events)
            last = await events.receive()
            assert [e.name for e in _with_queued(last, events)] == ["c3"]  # the end stops the batch

    anyio.run(main)


def test_every_event_of_a_request_arrives_before_its_answer(tmp_path: Path) -> None:
    def script(path: Path) -> None:
        for _ in range(20):
            events: list[dict[str, Any]] = []
            call(
                path,
                "up",
                on_event=events.append,
                load=load_request(tmp_path),
                options={"force_recreate": True},
            )
            started = [e["id"] for e in events if (e["type"], e["action"]) == ("container", "start")]
            assert sorted(started) == ["demo-db-1", "demo-web-1"]

    run_supervised(tmp_path, script)


def test_event_json_shape() -> None:
    event = Event(1764000000.5, "container", "die", "demo-web-1", "web", {"exitCode": "1"})
    assert json.loads(event.to_json_line()) == {
        "time": "2025-11-24T16:00:00.500000Z",
        "type": "container",
        "action": "die",
        "id": "demo-web-1",
        "service": "web",
        "attributes": {"exitCode": "1"},
    }


def test_events_stream(tmp_path: Path) -> None:
    import socket
    import threading

    received: list[dict[str, Any]] = []

    def script(path: Path) -> None:
        call(path, "up", load=load_request(tmp_path), options={})
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            sock.sendall(protocol.encode({"op": "events"}))
            reader = sock.makefile("rb")
            threading.Timer(0.2, lambda: call(path, "stop", services=["web"])).start()
            while len(received) < 3:
                received.append(protocol.decode(reader.readline())["event"])
        call(path, "down")

    run_supervised(tmp_path, script)
    assert [(e["action"], e["id"]) for e in received] == [
        ("kill", "demo-web-1"),
        ("die", "demo-web-1"),
        ("stop", "demo-web-1"),
    ]


def test_concurrent_ups_are_serialised(tmp_path: Path) -> None:
    import threading

    def script(path: Path) -> None:
        results: list[dict[str, Any]] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(call(path, "up", load=load_request(tmp_path), options={}))
            )
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(r["failed"] == {} for r in results)
        assert sorted(len(r["done"]) for r in results) == [0, 0, 5]  # one did the work, the others found none
        call(path, "down", load=load_request(tmp_path))

    runtime = run_supervised(tmp_path, script)
    assert runtime.calls.count("create demo-web-1") == 1


def test_kill_rm_pause_top_port(tmp_path: Path) -> None:
    def script(path: Path) -> None:
        call(path, "up", load=load_request(tmp_path), options={})
        assert call(path, "pause", services=["web"])["containers"] == ["demo-web-1"]
        state = json.loads((tmp_path / "run" / "demo" / "containers" / "demo-web-1.json").read_text())
        assert state["status"] == "paused"
        assert call(path, "pause", services=["web"])["containers"] == []  # already paused
        assert call(path, "unpause")["containers"] == ["demo-web-1"]
        top = call(path, "top", services=["db"])["containers"]
        assert list(top) == ["demo-db-1"] and top["demo-db-1"][0][1] == "fake-process"
        assert call(path, "port", service="web", target=80)["addresses"] == ["0.0.0.0:10080"]
        with pytest.raises(SupervisorError, match="no container number 2"):
            call(path, "port", service="web", index=2, target=80)
        assert call(path, "kill", services=["web"], signal="SIGKILL")["containers"] == ["demo-web-1"]
        assert call(path, "rm", services=["db"])["done"] == []  # running: left alone without --stop
        removed = call(path, "rm")
        assert removed["done"] == ["remove demo-web-1"]
        assert call(path, "rm", stop=True)["done"] == ["remove demo-db-1"]
        call(path, "down")

    runtime_holder: dict[str, Any] = {}

    def with_ports(path: Path) -> None:
        runtime_holder["runtime"].published["demo-web-1"] = (80,)
        script(path)

    (tmp_path / "compose.yaml").write_text(COMPOSE)
    runtime = FakeRuntime(SystemClock(), images={"busybox:1": "sha256:b1"})
    runtime_holder["runtime"] = runtime

    serve_supervisor(tmp_path, runtime, with_ports)
    assert "pause demo-web-1" in runtime.calls and "kill demo-web-1 SIGKILL" in runtime.calls


def test_attached_exec_passes_the_callers_descriptors(tmp_path: Path) -> None:
    import os

    def script(path: Path) -> None:
        call(path, "up", load=load_request(tmp_path), options={})
        read_end, write_end = os.pipe()
        try:
            result = call(
                path,
                "exec",
                container="demo-web-1",
                argv=["echo", "hi"],
                attach=True,
                pass_fds=(read_end, write_end, write_end),
            )
            assert result == {"exit_code": 0}
            assert os.read(read_end, 100) == b"ran echo hi\n"  # written by the runtime into our pipe
        finally:
            os.close(read_end)
            os.close(write_end)
        with pytest.raises(SupervisorError, match="needs the caller's stdin, stdout and stderr"):
            call(path, "exec", container="demo-web-1", argv=["x"], attach=True)
        call(path, "down")

    run_supervised(tmp_path, script)


def test_a_client_that_hangs_up_mid_request_does_not_take_the_supervisor_down(tmp_path: Path) -> None:
    import socket
    import time

    def script(path: Path) -> None:
        for _ in range(3):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(path))
                sock.sendall(protocol.encode({"op": "up", "load": load_request(tmp_path), "options": {}}))
            # gone before the first event: every event and the answer meet a closed stream
        assert call(path, "ping")["project"] == "demo"
        # the work went on without its client: the project comes up
        record_path = tmp_path / "run" / "demo" / "containers" / "demo-web-1.json"
        deadline = time.monotonic() + 10
        while not (record_path.exists() and json.loads(record_path.read_text())["status"] == "running"):
            assert time.monotonic() < deadline, "the abandoned up did not finish"
            time.sleep(0.05)
        done = call(path, "up", load=load_request(tmp_path), options={})
        assert done["failed"] == {} and not [k for k in done["done"] if k.startswith(("create", "start"))]

    run_supervised(tmp_path, script)


def test_the_command_line_written_by_spawn_parses() -> None:
    args = parse_arguments(
        ["--project", "demo", "--run-root=/run/orc", "--lib-root", "/var/lib/orc", "--ready-fd", "7"]
    )
    assert args == Arguments("demo", "/run/orc", "/var/lib/orc", "orc", 7)
    assert (
        parse_arguments(["--project=p", "--run-root=r", "--lib-root=l", "--cgroup-prefix=x"]).cgroup_prefix
        == "x"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--project", "p", "--run-root", "r"], "missing --lib-root"),
        (
            ["--project", "p", "--run-root", "r", "--lib-root", "l", "--verbose"],
            "unknown argument '--verbose'",
        ),
        (["--project"], "--project needs a value"),
        (["--project=p", "--run-root=r", "--lib-root=l", "--ready-fd=x"], "--ready-fd needs a number"),
        (["project"], "unknown argument 'project'"),
    ],
)
def test_a_bad_command_line_is_a_usage_error(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_arguments(argv)


def test_the_same_project_document_is_bound_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A repeated `up` sends the document it sent before: the supervisor reuses the spec it
    bound from it (binding is a pure function of the document) and binds a changed one again."""
    from orchestrator.reconciler import desired

    bound: list[dict[str, Any]] = []

    class Spec:
        name = "demo"

    def from_document(document: dict[str, Any]) -> Spec:
        bound.append(document)
        return Spec()

    monkeypatch.setattr(desired, "from_document", from_document)
    supervisor = Supervisor("demo", tmp_path / "run", tmp_path / "lib", lambda: None)
    first = supervisor._spec_from({"project": {"name": "demo", "services": {"web": {"image": "a"}}}})
    again = supervisor._spec_from({"project": {"name": "demo", "services": {"web": {"image": "a"}}}})
    assert again is first and len(bound) == 1
    changed = supervisor._spec_from({"project": {"name": "demo", "services": {"web": {"image": "b"}}}})
    assert changed is not first and len(bound) == 2


def test_a_failing_supervisor_removes_its_socket_before_its_runtime_shuts_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runtime's shutdown after a failure can take seconds (the kernel runtime hands the
    containers over); a command arriving meanwhile must find no socket rather than one that
    refuses it."""
    import contextlib
    from collections.abc import AsyncIterator

    runtime = FakeRuntime(SystemClock(), images={})
    socket_at_shutdown: list[bool] = []
    path = socket_path(tmp_path / "run", "demo")

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[FakeRuntime]:
        try:
            yield runtime
        finally:
            socket_at_shutdown.append(path.exists())

    supervisor = Supervisor("demo", tmp_path / "run", tmp_path / "lib", factory)

    async def broken_adopt() -> None:
        assert path.exists()  # listening by now
        raise RuntimeError("lost track of a container")

    monkeypatch.setattr(supervisor, "_adopt", broken_adopt)
    with pytest.raises(BaseException, match=r"lost track|unhandled errors"):
        anyio.run(supervisor.serve)
    assert socket_at_shutdown == [False]
