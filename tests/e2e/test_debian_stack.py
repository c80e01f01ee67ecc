"""examples/debian-stack end to end: redis-server and a Python app from an image built by debootstrap.

The image is built once per content of scripts/build-debian-image.sh and the packer (cached under
/var/cache/orc/debian, key in the directory name); the first run on a machine takes a minute or two
(debootstrap downloads from the Debian mirror), later runs only load the cached tar.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import REPO, OrcCli, assert_before
from tests.support.orc_cli import free_port

pytestmark = pytest.mark.kernel

IMAGE = "orc.local/debian-redis:bookworm"


def _load_debian_image(orc: OrcCli) -> None:
    env = {
        **orc.env,
        "ORC": f"{sys.executable} -m orchestrator",
        "ORC_ROOT": str(orc.root),
        "PATH": f"{os.path.dirname(sys.executable)}:{orc.env.get('PATH', '')}",
    }
    result = subprocess.run(
        [str(REPO / "scripts" / "build-debian-image.sh"), IMAGE, "redis-server", "python3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Loaded image: {IMAGE}" in result.stdout


def _hits(port: int) -> int:
    return int(httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()["hits"])


def _app_reaches_redis(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _running_healthy(orc: OrcCli, service: str) -> bool:
    return any(c["Service"] == service and c["Health"] == "healthy" for c in orc.ps())


def test_redis_and_app_from_debian_packages(orc_factory: Callable[..., OrcCli]) -> None:
    port = free_port()
    orc = orc_factory("debian-stack", env={"APP_PORT": str(port)})
    _load_debian_image(orc)

    up = orc.run("up", "-d")
    output = up.stdout + up.stderr
    assert_before(output, "redis-1  Healthy", "app-1  Started")
    orc.wait_for("app to be healthy", lambda: _running_healthy(orc, "app"))
    assert [_hits(port), _hits(port)] == [1, 2]
    assert "redis_version:7." in orc.run("exec", "redis", "redis-cli", "info", "server").stdout

    # redis killed: `restart: always` brings it back, and the append-only file on the named volume
    # keeps the counter
    orc.run("kill", "redis")
    orc.wait_for("redis to restart healthy", lambda: _running_healthy(orc, "redis"))
    orc.wait_for("app to be healthy again", lambda: _running_healthy(orc, "app"))
    # the app's health is up to one interval old: ask it (PING, no increment) until redis answers
    orc.wait_for("app to reach the restarted redis", lambda: _app_reaches_redis(port))
    assert _hits(port) == 3
    assert any(c["Service"] == "redis" and c["State"] == "running" for c in orc.ps())

    orc.run("down", "-v")
    assert orc.ps() == []
