"""examples/microservices-dev end to end: host-rootfs Python services found by DNS."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import OrcCli
from tests.support.orc_cli import free_port

pytestmark = pytest.mark.kernel


def test_python_services_run_from_source_on_the_host_userland(orc_factory: Callable[..., OrcCli]) -> None:
    port = free_port()
    orc = orc_factory("microservices-dev", env={"API_PORT": str(port)})

    orc.run("up", "-d")
    items = httpx.get(f"http://127.0.0.1:{port}/items", timeout=5).json()
    assert items["items"] == [{"id": 1, "name": "first"}]
    # its own pid namespace: python3 is the child of the init (tini) that is PID 1
    assert items["pid"] == 2

    created = httpx.post(f"http://127.0.0.1:{port}/items", json={"name": "second"}, timeout=5)
    assert created.status_code == 201
    orc.wait_for(
        "the client to see both items through DNS",
        lambda: "2 items from " in orc.run("logs", "client").stdout,
    )

    probe = orc.run(
        "exec",
        "api",
        "sh",
        "-c",
        "pwd; touch /usr/orc-probe 2>/dev/null && echo usr-writable; ls -A /tmp; ls -A /run; touch /scratch && echo root-writable",
    ).stdout.split("\n")
    assert probe[0] == str(orc.directory)  # the project directory is the working directory
    assert "usr-writable" not in probe
    assert "root-writable" in probe
    # private /tmp and /run: /tmp holds only the mount point on the way to the project directory
    listed = {line for line in probe[1:] if line and line != "root-writable"}
    assert listed <= {orc.directory.parts[2]}
    assert not Path("/scratch").exists()  # the container's root is its own overlay

    orc.run("down")
    assert orc.ps() == []
