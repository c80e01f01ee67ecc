"""Short syntax parsers: ports and volumes (tables + property tests against reference models)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.stack.formats import FormatError, parse_device, parse_port, parse_volume


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [{"mode": "ingress", "target": 80, "protocol": "tcp"}]),
        ("8080:80", [{"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}]),
        (
            "127.0.0.1:8080:80/udp",
            [
                {
                    "mode": "ingress",
                    "host_ip": "127.0.0.1",
                    "target": 80,
                    "published": "8080",
                    "protocol": "udp",
                }
            ],
        ),
        (
            "[::1]:53:53",
            [{"mode": "ingress", "host_ip": "::1", "target": 53, "published": "53", "protocol": "tcp"}],
        ),
        (
            "::1:53:53",
            [{"mode": "ingress", "host_ip": "::1", "target": 53, "published": "53", "protocol": "tcp"}],
        ),
        (
            "9000-9001:80",
            [{"mode": "ingress", "target": 80, "published": "9000-9001", "protocol": "tcp"}],
        ),
        ("127.0.0.1::80", [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 80, "protocol": "tcp"}]),
    ],
)
def test_port_table(spec: str, expected: list[dict[str, Any]]) -> None:
    assert parse_port(spec) == expected


def test_port_ranges_sort_as_compose_does() -> None:
    ports = parse_port("9998-10001:9998-10001")
    # compose-go sorts "port/proto" strings: 10000 and 10001 come before 9998
    assert [p["target"] for p in ports] == [10000, 10001, 9998, 9999]
    assert [p["published"] for p in ports] == ["10000", "10001", "9998", "9999"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("1.2.3:80:80", "invalid IP address: 1.2.3"),
        ("99999:80", "invalid hostPort: 99999"),
        ("80:", "invalid proto: $"),
        ("80-81:90-93", "invalid ranges"),
        ("80/icmp", "invalid proto: icmp"),
        ("80:80/tcp/x", "invalid proto: tcp/x"),
        ("a:b", "invalid containerPort: b"),
    ],
)
def test_bad_ports(spec: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_port(spec)


PORT = st.integers(1, 65535)


@st.composite
def port_specs(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    """A random short spec and the long form a simple reference model expects."""
    start = draw(st.integers(1, 60000))
    length = draw(st.integers(0, 3))
    proto = draw(st.sampled_from(["", "tcp", "udp", "sctp"]))
    ip = draw(st.sampled_from(["", "127.0.0.1", "0.0.0.0", "[::1]"]))
    with_host = draw(st.booleans()) or bool(ip)
    host_start = draw(st.integers(1, 60000))
    container = str(start) if length == 0 else f"{start}-{start + length}"
    host = ""
    if with_host:
        host = str(host_start) if length == 0 else f"{host_start}-{host_start + length}"
    spec = container + (f"/{proto}" if proto else "")
    if with_host:
        spec = f"{host}:{spec}"
    if ip:
        spec = f"{ip}:{spec}"
    expected = []
    for i in range(length + 1):
        port: dict[str, Any] = {"mode": "ingress"}
        if ip:
            port["host_ip"] = ip.strip("[]")
        port["target"] = start + i
        if with_host:
            port["published"] = str(host_start + i)
        port["protocol"] = proto or "tcp"
        expected.append(port)
    expected.sort(key=lambda p: f"{p['target']}/{p['protocol']}")
    return spec, expected


@given(port_specs())
def test_ports_agree_with_reference_model(case: tuple[str, list[dict[str, Any]]]) -> None:
    spec, expected = case
    assert parse_port(spec) == expected


@given(PORT, PORT)
def test_published_port_round_trips(published: int, target: int) -> None:
    [port] = parse_port(f"{published}:{target}")
    assert (int(port["published"]), port["target"]) == (published, target)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/data", {"type": "volume", "target": "/data", "volume": {}}),
        ("db:/var/lib/db", {"type": "volume", "source": "db", "target": "/var/lib/db", "volume": {}}),
        (
            "./src:/app:ro",
            {
                "type": "bind",
                "source": "./src",
                "target": "/app",
                "read_only": True,
                "bind": {"create_host_path": True},
            },
        ),
        (
            "/h:/c:rw,z,rshared",
            {
                "type": "bind",
                "source": "/h",
                "target": "/c",
                "bind": {"selinux": "z", "propagation": "rshared", "create_host_path": True},
            },
        ),
        ("vol:/c:nocopy", {"type": "volume", "source": "vol", "target": "/c", "volume": {"nocopy": True}}),
        # a one-letter source is a Windows drive, as in compose-go
        ("v:/c:ro", {"type": "bind", "source": "v:/c", "target": "ro", "bind": {"create_host_path": True}}),
        ("~/x:/y", {"type": "bind", "source": "~/x", "target": "/y", "bind": {"create_host_path": True}}),
        ("${HOST_DIR}:/y", {"type": "volume", "source": "${HOST_DIR}", "target": "/y", "volume": {}}),
        (
            "C:\\data:/d",
            {"type": "bind", "source": "C:\\data", "target": "/d", "bind": {"create_host_path": True}},
        ),
    ],
)
def test_volume_table(spec: str, expected: dict[str, Any]) -> None:
    assert parse_volume(spec) == expected


@pytest.mark.parametrize("spec", ["", "ab::c", "ab:/c:ro:x"])
def test_bad_volumes(spec: str) -> None:
    with pytest.raises(FormatError):
        parse_volume(spec)


SEGMENT = st.text(alphabet="abcxyz0123456789_-.", min_size=3, max_size=8)


@given(
    st.sampled_from(["", "./", "/", "~/"]),
    SEGMENT,
    SEGMENT,
    st.sampled_from(["", "ro", "rw", "z", "Z", "ro,z", "nocopy", "rslave"]),
)
def test_volumes_agree_with_reference_model(prefix: str, source: str, target: str, options: str) -> None:
    src = prefix + source
    spec = f"{src}:/{target}" + (f":{options}" if options else "")
    volume = parse_volume(spec)
    is_bind = src[0] in "./~"
    assert volume["type"] == ("bind" if is_bind else "volume")
    assert volume["source"] == src
    assert volume["target"] == f"/{target}"
    assert volume.get("read_only", False) == ("ro" in options.split(","))
    if is_bind:
        assert volume["bind"]["create_host_path"] is True
        for opt in options.split(","):
            if opt in ("z", "Z"):
                assert volume["bind"]["selinux"] == opt
            if opt == "rslave":
                assert volume["bind"]["propagation"] == "rslave"
    else:
        assert volume["volume"] == ({"nocopy": True} if options == "nocopy" else {})


def test_devices() -> None:
    assert parse_device("/dev/fuse") == {"source": "/dev/fuse", "target": "/dev/fuse", "permissions": "rwm"}
    assert parse_device("/dev/a:/dev/b:r") == {"source": "/dev/a", "target": "/dev/b", "permissions": "r"}
    with pytest.raises(FormatError):
        parse_device("a:b:c:d")
