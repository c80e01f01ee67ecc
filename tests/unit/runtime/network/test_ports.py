"""Published ports: Compose's short syntax to canonical long form, bind plans, ``orc port``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import NotFoundError, PermanentError
from orchestrator.runtime.network.ports import bind_plan, lookup_port, parse_port, port_from_long
from orchestrator.runtime.network.spec import PortBinding, PortSpec

CASES: dict[str, list[PortSpec]] = {
    "80": [PortSpec(80)],
    "3000-3002": [PortSpec(3000), PortSpec(3001), PortSpec(3002)],
    "8000:8000": [PortSpec(8000, "8000")],
    "9090-9091:8080-8081": [PortSpec(8080, "9090"), PortSpec(8081, "9091")],
    "49100:22": [PortSpec(22, "49100")],
    "127.0.0.1:8001:8001": [PortSpec(8001, "8001", "127.0.0.1")],
    "127.0.0.1::5000": [PortSpec(5000, None, "127.0.0.1")],
    "127.0.0.1:5000-5001:5000-5001": [
        PortSpec(5000, "5000", "127.0.0.1"),
        PortSpec(5001, "5001", "127.0.0.1"),
    ],
    "12400-12500:1240": [PortSpec(1240, "12400-12500")],
    "6060:6060/udp": [PortSpec(6060, "6060", None, "udp")],
    "[::1]:6000:6000/udp": [PortSpec(6000, "6000", "::1", "udp")],
    "::1:6001:6001": [PortSpec(6001, "6001", "::1")],
    "53/UDP": [PortSpec(53, None, None, "udp")],
}


@pytest.mark.parametrize("short", sorted(CASES))
def test_short_syntax(short: str) -> None:
    assert parse_port(short) == CASES[short]


@pytest.mark.parametrize(
    ("short", "message"),
    [
        ("80:80:80:80", "is not an IP address"),
        ("abc", "container port 'abc' is not a number"),
        ("70000", "out of range"),
        ("8080:80/sctp", "protocol 'sctp' is not tcp or udp"),
        ("9090-9092:8080-8081", "differ in length"),
        ("90-80:80", "ends before it starts"),
        ("[::1:80:80", "bad IPv6 address brackets"),
    ],
)
def test_bad_short_syntax(short: str, message: str) -> None:
    with pytest.raises(PermanentError, match=re.escape(message)):
        parse_port(short)


def test_long_form() -> None:
    assert port_from_long(
        {"target": 80, "published": "8080", "host_ip": "127.0.0.1", "protocol": "tcp"}
    ) == PortSpec(80, "8080", "127.0.0.1")
    assert port_from_long({"target": "53", "protocol": "UDP"}) == PortSpec(53, None, None, "udp")
    assert port_from_long({"target": 80, "published": "8000-8010"}) == PortSpec(80, "8000-8010")
    with pytest.raises(PermanentError):
        port_from_long({"target": 80, "host_ip": "nope"})


def test_bind_plan() -> None:
    assert bind_plan(PortSpec(80)).addresses == ("0.0.0.0", "::")
    assert bind_plan(PortSpec(80), ipv6=False).addresses == ("0.0.0.0",)
    assert bind_plan(PortSpec(80)).ports == (0,)
    plan = bind_plan(PortSpec(80, "8000-8002", "127.0.0.1"))
    assert plan == type(plan)(("127.0.0.1",), (8000, 8001, 8002))


def test_lookup_port() -> None:
    bindings = [
        PortBinding("p-web-1", 80, "tcp", "0.0.0.0", 32768, "10.0.0.2"),
        PortBinding("p-web-1", 80, "tcp", "::", 32768, "10.0.0.2"),
        PortBinding("p-web-2", 80, "tcp", "0.0.0.0", 32769, "10.0.0.3"),
        PortBinding("p-web-1", 53, "udp", "127.0.0.1", 5353, "10.0.0.2"),
    ]
    assert lookup_port(bindings, 80, "tcp", "p-web-1") == ["0.0.0.0:32768", "[::]:32768"]
    assert lookup_port(bindings, 53, "udp") == ["127.0.0.1:5353"]
    with pytest.raises(NotFoundError, match="no public port 53/tcp"):
        lookup_port(bindings, 53, "tcp")


@pytest.mark.oracle
def test_same_long_form_as_docker_compose(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    assert compose is not None
    doc = {"services": {"a": {"image": "x", "ports": sorted(CASES)}}}
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(doc))
    out = subprocess.run(
        [compose, "-f", str(tmp_path / "compose.yaml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    theirs = [port_from_long(p) for p in yaml.safe_load(out)["services"]["a"]["ports"]]
    ours = [spec for short in sorted(CASES) for spec in parse_port(short)]
    assert ours == theirs
