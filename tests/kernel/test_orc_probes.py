"""orc's own probes against real containers: an HTTP probe reaching a busybox httpd that listens
on the container's own 127.0.0.1 (unreachable from the host's loopback), so the probe must run in
the container's network namespace; ready_log; a TCP probe with restart_on_unhealthy; an invalid
x-orc block refused at ``up``."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.orc_cli import Orc, cgroup_dirs, clean_up, port_stack

pytestmark = pytest.mark.kernel

COMPOSE = """
name: {project}
x-busybox: &busybox
  image: busybox:orc-test
services:
  web:
    <<: *busybox
    # listens on the container's loopback only; the image is never asked to run wget or curl
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/health; trap 'exit 0' TERM; httpd -f -p 127.0.0.1:{port} -h /www & wait"]
    x-orc:
      rootfs: {rootfs}
      probe: {{http: {{port: {port}, path: /health, status: 200}}, interval: 200ms, timeout: 1s, retries: 2}}
  dependent:
    <<: *busybox
    x-orc: {{rootfs: {rootfs}}}
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
    depends_on: {{web: {{condition: service_healthy}}}}
  logger:
    <<: *busybox
    command: ["sh", "-c", "echo warming up; sleep 0.5; echo server ready on 5000; trap 'exit 0' TERM; sleep 100000 & wait"]
    x-orc: {{rootfs: {rootfs}, ready_log: "ready on [0-9]+"}}
  sick:
    <<: *busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
    x-orc:
      rootfs: {rootfs}
      probe: {{tcp: {{port: {port}}}, interval: 200ms, timeout: 1s, retries: 1}}
      restart_on_unhealthy: true
"""


@pytest.fixture
def project(tmp_path: Path, busybox_rootfs: Path, unique_name: str) -> Iterator[tuple[Orc, str, int]]:
    with port_stack(tmp_path, unique_name, busybox_rootfs, COMPOSE) as stack:
        yield stack


def ps(orc: Orc) -> dict[str, dict[str, object]]:
    return {str(r["Service"]): r for r in orc.ps()}


def container_record(tmp_path: Path, project: str, name: str) -> dict[str, object]:
    return dict(json.loads((tmp_path / "root" / "run" / project / "containers" / f"{name}.json").read_text()))


def test_probes_in_the_container_netns_ready_log_and_restart_on_unhealthy(
    project: tuple[Orc, str, int], tmp_path: Path
) -> None:
    orc, name, port = project
    orc("up", "--wait", "--wait-timeout", "60", "web", "dependent", "logger")
    # `orc events` follows the supervisor `up` started.
    events = orc.popen(
        "events",
        "--json",
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        rows = ps(orc)
        assert rows["web"]["Health"] == "healthy"
        assert rows["logger"]["Health"] == "healthy"
        assert rows["dependent"]["State"] == "running"
        # The server is not reachable from the host's loopback: only a probe made inside the
        # container's network namespace could have found it healthy.
        with socket.socket() as probe_from_host:
            assert probe_from_host.connect_ex(("127.0.0.1", port)) != 0

        orc("up", "-d", "--no-deps", "sick")
        deadline = time.monotonic() + 30
        restarts = 0
        while time.monotonic() < deadline and restarts < 2:
            restarts = int(str(container_record(tmp_path, name, f"{name}-sick-1").get("restart_count", 0)))
            time.sleep(0.2)
        assert restarts >= 2, "sick was not restarted on unhealthy"
        assert ps(orc)["web"]["Health"] == "healthy"  # still healthy, not restarted
        assert container_record(tmp_path, name, f"{name}-web-1").get("restart_count", 0) == 0
    finally:
        orc("stop", "-t", "1", check=False)
        events.terminate()
        output, _ = events.communicate(timeout=10)
    seen = [json.loads(line) for line in output.splitlines() if line.strip()]
    by_service = [(e.get("service"), e.get("action"), e.get("attributes", {})) for e in seen]
    assert ("sick", "kill", {"signal": "SIGTERM", "reason": "unhealthy"}) in by_service
    sick_restarts = [attrs for s, a, attrs in by_service if s == "sick" and a == "restart"]
    assert sick_restarts and sick_restarts[0]["reason"] == "unhealthy (x-orc restart_on_unhealthy)"
    unhealthy = [attrs for s, a, attrs in by_service if s == "sick" and a == "health_status: unhealthy"]
    assert unhealthy and "Connection refused" in str(unhealthy[0].get("output"))


def test_an_invalid_x_orc_block_is_refused_at_up(
    tmp_path: Path, busybox_rootfs: Path, unique_name: str
) -> None:
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    (project_dir / "compose.yaml").write_text(
        f"name: {unique_name}\nservices:\n  web:\n    image: busybox:orc-test\n"
        f"    x-orc: {{rootfs: {busybox_rootfs}, probe: {{http: {{port: 99999}}}}}}\n"
    )
    orc = Orc(tmp_path / "root", project_dir, unique_name)
    try:
        result = orc("up", "-d", check=False)
        assert result.returncode != 0
        assert "services.web.x-orc.probe.http.port: must be within 1-65535, got 99999" in result.stderr
        assert cgroup_dirs(unique_name) == []
    finally:
        clean_up(orc)
