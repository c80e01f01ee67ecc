"""examples/quickstart end to end: what its README promises, from image load to down."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import OrcCli, assert_before
from tests.support.orc_cli import free_port

pytestmark = pytest.mark.kernel


def test_quickstart_serves_the_front_and_the_api_by_name(
    orc_factory: Callable[..., OrcCli], offline_busybox: Callable[[OrcCli], None]
) -> None:
    port = free_port()
    orc = orc_factory("quickstart", env={"QUICKSTART_PORT": str(port)})
    offline_busybox(orc)

    up = orc.run("up", "-d")
    # the healthcheck gate: web and worker start only after api is healthy
    output = up.stdout + up.stderr
    assert_before(output, "api-1  Healthy", "web-1  Started")
    assert_before(output, "api-1  Healthy", "worker-1  Started")

    front = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert front.status_code == 200 and "Hello from orc" in front.text

    answer = httpx.get(f"http://127.0.0.1:{port}/cgi-bin/api", timeout=5)
    assert json.loads(answer.text)["service"] == "api"

    orc.wait_for("worker to reach the api", lambda: '"service": "api"' in orc.run("logs", "worker").stdout)
    orc.wait_for(
        "every service to be healthy or running",
        lambda: (
            sorted(str(c.get("Health") or c.get("State")) for c in orc.ps())
            == ["healthy", "healthy", "running"]
        ),
    )

    orc.run("down")
    assert orc.ps() == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
