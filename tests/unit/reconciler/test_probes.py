"""orc's own probes on the fakes and virtual time: x-orc http/tcp probes as the health source,
ready_log, restart_on_unhealthy through the restart tracker, validation at ``up``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import StackError
from orchestrator.model import Service, freeze
from orchestrator.model.orc_extension import HttpProbe, parse_orc_extension
from orchestrator.planner.observed import Dependency, Desired
from orchestrator.planner.restart import RestartPolicy, RestartTracker
from orchestrator.reconciler.health import HealthCheck
from orchestrator.reconciler.probes import (
    FakeProbeDriver,
    NetnsProbeDriver,
    health_check_for,
    unhealthy_restart_decision,
    with_orc_health,
)
from orchestrator.reconciler.project import ProjectSpec, ServiceBehaviour
from orchestrator.state.logs import LogWriter
from tests.unit.reconciler.harness import World, run_world, service

COMPOSE_CHECK = HealthCheck(("CMD", "true"), interval=1.0, timeout=1.0)


def project(x_orc: dict[str, Any], *, restart: str = "no", compose_check: bool = False) -> ProjectSpec:
    """``api`` carries the x-orc block; ``web`` waits for it to be healthy."""
    source = Service(name="api", image="app:1", extensions=freeze({"x-orc": x_orc}))
    api = service("api", "app:1")
    web = service("web", "nginx:1", depends_on=(Dependency("api", "service_healthy"),))
    return ProjectSpec(
        Desired("demo", (api, web), networks=("demo_default",)),
        behaviours={
            "api": ServiceBehaviour(
                healthcheck=COMPOSE_CHECK if compose_check else None,
                restart=RestartPolicy.from_compose(restart),
                source=source,
            )
        },
    )


def http_probe(**timings: Any) -> dict[str, Any]:
    return {
        "probe": {"http": {"port": 8080, "path": "/health"}, "interval": "1s", "timeout": "1s", **timings}
    }


def test_http_probe_replaces_the_compose_healthcheck_and_gates_dependents() -> None:
    probes = FakeProbeDriver(answers={1: 1})

    async def body(w: World) -> None:
        w.reconciler.probes = probes
        report = await w.reconciler.up(project(http_probe(), compose_check=True))
        assert report.ok, report

    w = run_world(body)
    api = w.store.load_container("demo", "demo-api-1")
    assert api is not None and api.health == "healthy"
    # Two probes (a failure, then a success), from the container's pid; no exec at all.
    assert probes.calls == [f"connect {api.pid} http :8080/health"] * 2
    assert not any(call.startswith("exec") for call in w.runtime.calls)
    assert w.at("start demo-web-1")[0] - w.at("start demo-api-1")[0] == 2.0
    healthy = [e for e in w.bus.history if e.action == "health_status: healthy"]
    assert healthy[0].attributes == {"output": "ok"}


def test_retries_and_start_period_count_like_a_compose_healthcheck() -> None:
    probes = FakeProbeDriver(default=1)

    async def body(w: World) -> None:
        w.reconciler.probes = probes
        report = await w.reconciler.up(project(http_probe(retries=2, start_period="3s", start_interval="1s")))
        assert "demo-api-1 is unhealthy" in str(report.failed)

    w = run_world(body)
    unhealthy = [
        e.time - w.bus.history[0].time for e in w.bus.history if e.action == "health_status: unhealthy"
    ]
    # Failures inside the 3 s start period do not count: probes at 1, 2 (ignored), 3, 4 → unhealthy at 4.
    assert [round(t) for t in unhealthy] == [4]
    assert "start demo-web-1" not in w.runtime.calls


def test_tcp_probe_timeout_is_a_failure() -> None:
    probes = FakeProbeDriver(delay=5.0)

    async def body(w: World) -> None:
        probes.clock = w.clock
        w.reconciler.probes = probes
        await w.reconciler.up(
            project({"probe": {"tcp": {"port": 5432}, "interval": "1s", "timeout": "1s", "retries": 1}})
        )

    w = run_world(body)
    event = next(e for e in w.bus.history if e.action == "health_status: unhealthy")
    assert event.attributes["output"] == "Health check exceeded timeout (1s)"


def test_restart_on_unhealthy_restarts_with_docker_backoff_despite_restart_no() -> None:
    probes = FakeProbeDriver(default=1)

    async def body(w: World) -> None:
        w.reconciler.probes = probes
        await w.reconciler.up(project({**http_probe(retries=3), "restart_on_unhealthy": True}))
        await w.clock.sleep(7.0)

    w = run_world(body)
    # up fails web's gate at t=3 and the body then waits until t=10. Each run turns unhealthy
    # after three failed probes, is stopped and restarted after 0.1 s, then 0.2 s, then 0.4 s.
    assert w.at("start demo-api-1") == [0.0, 3.1, 6.3, 9.7]
    assert w.at("stop demo-api-1") == [3.0, 6.1, 9.3]
    api = w.store.load_container("demo", "demo-api-1")
    assert api is not None and api.restart_count == 3
    restarts = [e for e in w.bus.history if e.action == "restart"]
    assert [e.attributes["reason"] for e in restarts] == ["unhealthy (x-orc restart_on_unhealthy)"] * 3
    kills = [e for e in w.bus.history if e.action == "kill"]
    assert kills[0].attributes == {"signal": "SIGTERM", "reason": "unhealthy"}


def test_without_restart_on_unhealthy_an_unhealthy_container_keeps_running() -> None:
    async def body(w: World) -> None:
        w.reconciler.probes = FakeProbeDriver(default=1)
        await w.reconciler.up(project(http_probe()))
        await w.clock.sleep(7.0)

    w = run_world(body)
    assert w.at("start demo-api-1") == [0.0]
    assert not w.at("stop demo-api-1")


def test_restart_on_unhealthy_works_with_a_compose_healthcheck_too() -> None:
    from orchestrator.reconciler.fake import ProcessScript

    async def body(w: World) -> None:
        await w.reconciler.up(project({"restart_on_unhealthy": True}, compose_check=True))
        await w.clock.sleep(4.0)

    w = run_world(body, scripts={"api": ProcessScript(health_default=1)})
    assert w.at("start demo-api-1") == [0.0, 3.1, 6.3]


def test_ready_log_makes_it_healthy_on_the_first_matching_line() -> None:
    probes = FakeProbeDriver(output=["booting"])

    async def body(w: World) -> None:
        w.reconciler.probes = probes

        async def later() -> None:
            await w.clock.sleep(1.0)
            probes.output.append("listening on :8080")

        import anyio

        async with anyio.create_task_group() as group:
            group.start_soon(later)
            report = await w.reconciler.up(project({"ready_log": r"listening on :\d+"}))
        assert report.ok, report

    w = run_world(body)
    api = w.store.load_container("demo", "demo-api-1")
    assert api is not None and api.health == "healthy"
    assert probes.calls == [f"read {api.log_path or ''}"]
    started = w.at("start demo-web-1")[0]
    assert 1.0 <= started <= 1.2 + 1e-9  # polled every 0.2 s
    healthy = next(e for e in w.bus.history if e.action == "health_status: healthy")
    assert healthy.attributes == {"output": "listening on :8080"}


def test_up_refuses_an_invalid_block_naming_service_and_key() -> None:
    async def body(w: World) -> None:
        with pytest.raises(StackError, match=r"services\.api\.x-orc\.probe\.http\.port: is required"):
            await w.reconciler.up(project({"probe": {"http": {"path": "/"}}}))

    w = run_world(body)
    assert not w.runtime.calls


def test_with_orc_health_describes_the_source_and_keeps_timings() -> None:
    source = Service(name="api", extensions=freeze({"x-orc": http_probe(retries=4)}))
    behaviour = with_orc_health(ServiceBehaviour(healthcheck=COMPOSE_CHECK, source=source))
    assert behaviour.healthcheck == HealthCheck(
        ("CMD", "x-orc", "http :8080/health"), interval=1.0, timeout=1.0, retries=4
    )
    plain = ServiceBehaviour(healthcheck=COMPOSE_CHECK, source=Service(name="api"))
    assert with_orc_health(plain) is plain
    ready = health_check_for(parse_orc_extension("api", {"ready_log": "up"}))
    assert ready is not None and ready.test == ("CMD", "x-orc", "ready_log up")


def test_unhealthy_restart_decision_doubles_resets_and_honours_a_fixed_delay() -> None:
    tracker = RestartTracker(RestartPolicy.from_compose("no"))
    delays = [unhealthy_restart_decision(tracker, started_at=0.0, exited_at=1.0).delay for _ in range(4)]
    assert delays == [0.1, 0.2, 0.4, 0.8]
    assert unhealthy_restart_decision(tracker, started_at=0.0, exited_at=10.0).delay == 0.1
    assert tracker.restart_count == 5
    fixed = RestartTracker(RestartPolicy(mode="always", delay=2.5))
    assert unhealthy_restart_decision(fixed, started_at=0.0, exited_at=1.0).delay == 2.5


def test_log_tail_returns_new_complete_lines_since_the_start(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    now = [1_000_000_000]
    writer = LogWriter(path, clock_ns=lambda: now[0])
    writer.write("stdout", b"before the start\n")
    now[0] = 5_000_000_000
    writer.write("stdout", b"one\ntwo\npart")
    read = NetnsProbeDriver().output_reader(str(path), since=4.0)
    assert read() == ["one", "two"]
    assert read() == []
    writer.write("stdout", b"ial\n")
    assert read() == ["partial"]
    writer.close()
    assert NetnsProbeDriver().output_reader(str(tmp_path / "missing.log"), 0.0)() == []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[-1]["log"] == "partial\n"


def test_a_container_stopped_by_the_user_is_not_restarted_for_being_unhealthy() -> None:
    from orchestrator.reconciler.fake import ProcessScript

    async def body(w: World) -> None:
        w.reconciler.probes = FakeProbeDriver(default=1)
        await w.reconciler.up(project({**http_probe(retries=1), "restart_on_unhealthy": True}))
        await w.reconciler.down("demo")
        await w.clock.sleep(5.0)

    # api ignores SIGTERM: the unhealthy stop at t=1 is still waiting out its grace period when
    # down stops the container; the exit must not lead to a restart.
    w = run_world(body, scripts={"api": ProcessScript(ignores_term=True)})
    assert w.at("start demo-api-1") == [0.0]
    assert not [e for e in w.bus.history if e.action == "restart"]
    assert w.store.load_container("demo", "demo-api-1") is None


@pytest.mark.parametrize(
    ("answer", "code", "output"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", 0, "http /health: HTTP/1.1 204 No Content"),
        (b"HTTP/1.0 503 Service Unavailable\r\n", 1, "http /health: HTTP/1.0 503 Service Unavailable"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", 1, "http /health: not an HTTP response: 'SSH-2.0-OpenSSH_9.2'"),
        (b"", 1, "http /health: not an HTTP response: ''"),
    ],
)
def test_http_exchange_sends_a_get_and_judges_the_status_line(answer: bytes, code: int, output: str) -> None:
    import socket

    import anyio

    from orchestrator.reconciler.probes import _http_exchange

    client, server = socket.socketpair()
    client.setblocking(False)
    target = HttpProbe(8080, "/health", 200, 299, host="api.local")
    try:

        async def main() -> tuple[int, str, bytes]:
            async with anyio.create_task_group() as group:

                async def answer_once() -> None:
                    await anyio.to_thread.run_sync(lambda: None)
                    server.sendall(answer)
                    server.shutdown(socket.SHUT_WR)

                group.start_soon(answer_once)
                result = await _http_exchange(client, target)
            return result.exit_code, result.output, server.recv(4096)

        exit_code, text, request = anyio.run(main)
    finally:
        client.close()
        server.close()
    assert (exit_code, text) == (code, output)
    assert request.startswith(b"GET /health HTTP/1.1\r\nHost: api.local\r\n")
    assert request.endswith(b"Connection: close\r\n\r\n")
