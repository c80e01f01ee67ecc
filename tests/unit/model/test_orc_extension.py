"""Parsing and validation of a service's ``x-orc`` block."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.errors import StackError
from orchestrator.model.orc_extension import (
    HttpProbe,
    OrcExtension,
    OrcProbe,
    ProbeTimings,
    TcpProbe,
    parse_orc_extension,
)


def problems(raw: Any) -> list[str]:
    with pytest.raises(StackError) as caught:
        parse_orc_extension("web", raw)
    return [str(p) for p in caught.value.problems]


def test_absent_block_is_empty() -> None:
    assert parse_orc_extension("web", None) == OrcExtension()
    assert not OrcExtension().replaces_healthcheck


def test_http_probe_with_all_keys() -> None:
    extension = parse_orc_extension(
        "web",
        {
            "probe": {
                "http": {"port": 8080, "path": "/health", "status": "200-299", "host": "example.org"},
                "interval": "2s",
                "timeout": "500ms",
                "retries": 5,
                "start_period": "1m",
                "start_interval": "1s",
            },
            "restart_on_unhealthy": True,
        },
    )
    assert extension.probe == OrcProbe(
        HttpProbe(8080, "/health", 200, 299, "example.org"),
        ProbeTimings(interval=2.0, timeout=0.5, retries=5, start_period=60.0, start_interval=1.0),
    )
    assert extension.probe.kind == "http"
    assert extension.restart_on_unhealthy
    assert extension.replaces_healthcheck


def test_defaults_follow_compose_healthcheck_and_http_accepts_2xx_3xx() -> None:
    extension = parse_orc_extension("web", {"probe": {"http": {"port": "80"}}})
    assert extension.probe == OrcProbe(
        HttpProbe(80, "/", 200, 399, None), ProbeTimings(30.0, 30.0, 3, 0.0, 5.0)
    )


def test_single_status_code_and_tcp_probe() -> None:
    single = parse_orc_extension("web", {"probe": {"http": {"port": 1, "status": 204}}})
    assert single.probe is not None and single.probe.target == HttpProbe(1, "/", 204, 204)
    tcp = parse_orc_extension("db", {"probe": {"tcp": {"port": 5432}}})
    assert tcp.probe is not None and tcp.probe.target == TcpProbe(5432) and tcp.probe.kind == "tcp"


def test_ready_log_and_rootfs() -> None:
    extension = parse_orc_extension("web", {"ready_log": r"listening on \d+", "rootfs": "host"})
    assert extension == OrcExtension(rootfs="host", ready_log=r"listening on \d+")
    assert extension.replaces_healthcheck


def test_every_problem_is_reported_with_service_and_key() -> None:
    found = problems(
        {
            "probe": {"http": {"port": 70000, "path": "health", "status": "600-700", "verb": "HEAD"}},
            "ready_log": "(",
            "restart_on_unhealthy": "yes",
            "colour": "blue",
        }
    )
    assert (
        "services.web.x-orc.colour: unknown x-orc key (known: rootfs, probe, ready_log, restart_on_unhealthy)"
        in found
    )
    assert "services.web.x-orc.probe.http.port: must be within 1-65535, got 70000" in found
    assert any(p.startswith("services.web.x-orc.probe.http.path: must be an absolute") for p in found)
    assert any(p.startswith("services.web.x-orc.probe.http.status: range '600-700'") for p in found)
    assert any(p.startswith("services.web.x-orc.probe.http.verb: unknown http probe key") for p in found)
    assert any(p.startswith("services.web.x-orc.ready_log: invalid regular expression '('") for p in found)
    assert "services.web.x-orc.restart_on_unhealthy: must be true or false, got 'yes'" in found


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("text", "services.web.x-orc: must be a mapping, got str"),
        ({"probe": {}}, "services.web.x-orc.probe: needs exactly one of http or tcp"),
        ({"probe": {"http": {"port": 1}, "tcp": {"port": 2}}}, "services.web.x-orc.probe: needs exactly one"),
        ({"probe": {"tcp": {}}}, "services.web.x-orc.probe.tcp.port: is required"),
        ({"probe": {"tcp": {"port": True}}}, "services.web.x-orc.probe.tcp.port: must be a port number"),
        (
            {"probe": {"tcp": {"port": 1, "path": "/"}}},
            "services.web.x-orc.probe.tcp.path: unknown tcp probe key",
        ),
        ({"probe": {"tcp": 5432}}, "services.web.x-orc.probe.tcp: must be a mapping with a port"),
        (
            {"probe": {"tcp": {"port": 1}, "interval": "soon"}},
            "services.web.x-orc.probe.interval: invalid duration",
        ),
        (
            {"probe": {"tcp": {"port": 1}, "timeout": "0s"}},
            "services.web.x-orc.probe.timeout: must be positive",
        ),
        (
            {"probe": {"tcp": {"port": 1}, "retries": 0}},
            "services.web.x-orc.probe.retries: must be a whole number",
        ),
        ({"probe": {"tcp": {"port": 1}, "every": "1s"}}, "services.web.x-orc.probe.every: unknown probe key"),
        (
            {"probe": {"http": {"port": 1, "host": "a b"}}},
            "services.web.x-orc.probe.http.host: must be a host name",
        ),
        (
            {"probe": {"http": {"port": 1, "status": "ok"}}},
            "services.web.x-orc.probe.http.status: must be a status",
        ),
        ({"ready_log": ""}, "services.web.x-orc.ready_log: must be a non-empty regular expression"),
        ({"rootfs": ""}, "services.web.x-orc.rootfs: must be a directory path or 'host'"),
        (
            {"probe": {"tcp": {"port": 1}}, "ready_log": "up"},
            "services.web.x-orc: set either probe or ready_log, not both",
        ),
    ],
)
def test_invalid_blocks(raw: Any, expected: str) -> None:
    found = problems(raw)
    assert any(p.startswith(expected) for p in found), found
