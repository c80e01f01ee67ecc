"""A container's resolv.conf and hosts texts."""

from __future__ import annotations

import pytest

from orchestrator.errors import PermanentError
from orchestrator.runtime.network.dnsfiles import hosts_file, parse_resolv_conf, resolv_conf

HOST = parse_resolv_conf(
    "# comment\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\nnameserver bogus\n"
    "search corp.example lab.example\noptions edns0 trust-ad\n"
)


def test_parse_host_resolv_conf() -> None:
    assert HOST.nameservers == ("10.255.255.53", "fe80::1")
    assert HOST.search == ("corp.example", "lab.example")
    assert HOST.options == ("edns0", "trust-ad")


def test_orc_network_points_at_the_gateway_resolver() -> None:
    text = resolv_conf(HOST, "172.18.0.1", dns=["9.9.9.9"], dns_opt=["ndots:2"])
    assert text == "nameserver 172.18.0.1\nsearch corp.example lab.example\noptions ndots:2\n"


def test_host_and_none_modes_use_dns_or_the_host() -> None:
    assert resolv_conf(HOST, None, dns=["9.9.9.9", "1.1.1.1"], dns_search=["x.example"]).splitlines() == [
        "nameserver 9.9.9.9",
        "nameserver 1.1.1.1",
        "search x.example",
        "options edns0 trust-ad",
    ]
    assert resolv_conf(HOST, None).startswith("nameserver 10.255.255.53\nnameserver fe80::1\n")
    assert "search" not in resolv_conf(HOST, None, dns_search=["."])


def test_hosts_file() -> None:
    text = hosts_file(
        "web",
        ["172.18.0.2", "fd00::2"],
        aliases=["p-web-1", "web"],
        extra_hosts=["db.local:10.1.1.1", "v6=::1", "host.docker.internal:host-gateway"],
        host_gateway="172.18.0.1",
    )
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert "172.18.0.2\tweb p-web-1" in lines and "fd00::2\tweb p-web-1" in lines
    assert lines[-3:] == ["10.1.1.1\tdb.local", "::1\tv6", "172.18.0.1\thost.docker.internal"]
    assert "::1" not in hosts_file("web", [], ipv6=False).split("\t")[0]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("nohost", "expected NAME:IP"),
        ("x:not-ip", "is not an IP address"),
        ("g:host-gateway", "no host gateway"),
    ],
)
def test_bad_extra_hosts(entry: str, message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        hosts_file("web", [], extra_hosts=[entry])
