"""examples/restart-and-health end to end: on-failure:3 restarts and health changes in `orc events`;
x-orc HTTP probe, ready_log and restart_on_unhealthy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.e2e.conftest import OrcCli, assert_before

pytestmark = pytest.mark.kernel


def _state(orc: OrcCli, service: str) -> tuple[str, str, object]:
    for container in orc.ps():
        if container["Service"] == service:
            return str(container["State"]), str(container["Health"]), container["ExitCode"]
    raise AssertionError(f"no container for {service}")


def test_crasher_is_restarted_three_times_and_health_changes_are_events(
    orc_factory: Callable[..., OrcCli], offline_busybox: Callable[[OrcCli], None]
) -> None:
    orc = orc_factory("restart-and-health")
    offline_busybox(orc)
    up = orc.run("up", "-d")
    output = up.stdout + up.stderr
    assert_before(output, "flaky-1  Healthy", "dependent-1  Started")

    command = [
        sys.executable,
        "-m",
        "orchestrator",
        "--root",
        str(orc.root),
        "-p",
        orc.project,
        "events",
        "--json",
    ]
    events = subprocess.Popen(
        command, cwd=orc.directory, env=orc.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        # between two attempts the container is briefly "exited" too: wait for the fourth run's end
        orc.wait_for(
            "crasher to give up after its fourth run",
            lambda: (
                orc.run("logs", "crasher").stdout.count("failing with 3") == 4
                and _state(orc, "crasher") == ("exited", "", 3)
            ),
            timeout=30,
        )
        orc.run("exec", "flaky", "touch", "/tmp/sick")
        orc.wait_for("flaky to be unhealthy", lambda: _state(orc, "flaky")[1] == "unhealthy")
        orc.run("exec", "flaky", "rm", "/tmp/sick")
        orc.wait_for("flaky to be healthy again", lambda: _state(orc, "flaky")[1] == "healthy")
        # x-orc: an HTTP probe run by orc in web's netns, ready_log, restart_on_unhealthy
        orc.wait_for("web's x-orc http probe to pass", lambda: _state(orc, "web")[1] == "healthy")
        orc.wait_for("worker's ready_log line", lambda: _state(orc, "worker")[1] == "healthy")
        orc.run("exec", "web", "rm", "/www/health")
        orc.wait_for(
            "web to be restarted for being unhealthy and healthy again",
            lambda: (
                orc.run("logs", "web").stdout.count("web: serving") == 2
                and _state(orc, "web")[1] == "healthy"
            ),
            timeout=30,
        )
        orc.run("down")  # the supervisor exits, which ends `orc events`
        out, _ = events.communicate(timeout=20)
    finally:
        if events.poll() is None:
            events.kill()
            events.wait()

    seen = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    crasher = [e for e in seen if e.get("service") == "crasher" and e["action"] in ("die", "restart")]
    reasons = [e["attributes"]["reason"] for e in crasher if e["action"] == "restart"]
    # `orc events` starts after `up -d` returned, so it may miss the first attempt, never the last
    assert reasons[-1] == "exited with code 3, restart policy on-failure:3 (attempt 3 of 3)"
    assert [e["action"] for e in crasher[-2:]] == ["restart", "die"]
    assert crasher[-1]["attributes"]["exitCode"] == "3"
    flaky = [
        e["action"] for e in seen if e.get("service") == "flaky" and e["action"].startswith("health_status")
    ]
    assert flaky[-2:] == ["health_status: unhealthy", "health_status: healthy"]
    web = [(e["action"], e.get("attributes") or {}) for e in seen if e.get("service") == "web"]
    unhealthy = [attributes for action, attributes in web if action == "health_status: unhealthy"]
    assert unhealthy and "404" in unhealthy[0]["output"], web
    assert ("kill", {"signal": "SIGTERM", "reason": "unhealthy"}) in web
    actions = [action for action, _ in web]
    restart = actions.index("restart")
    assert (
        actions.index("health_status: unhealthy")
        < restart
        < len(actions) - actions[::-1].index("health_status: healthy")
    )
    assert web[restart][1]["reason"] == "unhealthy (x-orc restart_on_unhealthy)"
