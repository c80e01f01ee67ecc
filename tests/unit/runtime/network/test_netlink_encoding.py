"""The netlink messages orc encodes itself are byte for byte what pyroute2 encodes for them."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from orchestrator.runtime.network.netlink import (
    IFA_F_NODAD,
    IFF_UP,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    RTN_UNICAST,
    RTPROT_BOOT,
    IfaceAddress,
    RtnlSocket,
    _codecs,
    _message,
    address_message,
    default_route_message,
    link_by_name_message,
    link_up_message,
    veth_message,
)

FLAGS = NLM_F_REQUEST | NLM_F_ACK


def _sent(message: Any, message_type: int, flags: int = 0) -> bytes:
    """What RtnlSocket.request sends for ``message`` (the first request of a new socket)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    rtnl = RtnlSocket.__new__(RtnlSocket)
    rtnl.sock, rtnl._sequence = a, 0
    a.setblocking(False)
    with pytest.raises(BlockingIOError):  # no reply comes: only what was sent matters
        rtnl.request(message, message_type, flags)
    data = b.recv(65536)
    a.close()
    b.close()
    return data


def _pyroute2(kind: str, fields: dict[str, int], attrs: list[Any]) -> Any:
    ifinfmsg, ifaddrmsg, rtmsg = _codecs()
    return _message({"ifinfmsg": ifinfmsg, "ifaddrmsg": ifaddrmsg, "rtmsg": rtmsg}[kind], fields, attrs)


@pytest.mark.parametrize("index", [1, 7, 65536])
def test_link_up(index: int) -> None:
    ours = _sent(link_up_message(index), RTM_NEWLINK)
    theirs = _sent(
        _pyroute2("ifinfmsg", {"index": index, "flags": IFF_UP, "change": IFF_UP}, []), RTM_NEWLINK
    )
    assert ours == theirs


@pytest.mark.parametrize("name", ["eth0", "orc0123456789a", "lo", "a"])
def test_link_by_name(name: str) -> None:
    ours = _sent(link_by_name_message(name), RTM_GETLINK)
    assert ours == _sent(_pyroute2("ifinfmsg", {}, [("IFLA_IFNAME", name)]), RTM_GETLINK)


@pytest.mark.parametrize(("address", "prefix"), [("10.1.0.2", 16), ("172.18.255.254", 24), ("fd00::2", 64)])
def test_address(address: str, prefix: int) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    attrs: list[Any] = [("IFA_ADDRESS", address)]
    if family == socket.AF_INET:
        attrs.insert(0, ("IFA_LOCAL", address))
    fields = {"family": family, "prefixlen": prefix, "flags": IFA_F_NODAD, "index": 3}
    flags = NLM_F_CREATE | NLM_F_EXCL
    ours = _sent(address_message(3, IfaceAddress(address, prefix)), RTM_NEWADDR, flags)
    assert ours == _sent(_pyroute2("ifaddrmsg", fields, attrs), RTM_NEWADDR, flags)


@pytest.mark.parametrize(("host", "peer"), [("vethabc", "eth0"), ("orc1234567890a", "eth12")])
def test_veth(host: str, peer: str) -> None:
    flags = NLM_F_CREATE | NLM_F_EXCL
    ours = _sent(veth_message(host, 1450, 4, peer, 9, "02:42:0a:01:00:02"), RTM_NEWLINK, flags)
    peer_attrs = {
        "attrs": [
            ("IFLA_IFNAME", peer),
            ("IFLA_NET_NS_FD", 9),
            ("IFLA_ADDRESS", "02:42:0a:01:00:02"),
            ("IFLA_MTU", 1450),
        ]
    }
    linkinfo = {
        "attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer_attrs)]})]
    }
    theirs = _pyroute2(
        "ifinfmsg",
        {"flags": IFF_UP, "change": IFF_UP},
        [("IFLA_IFNAME", host), ("IFLA_MTU", 1450), ("IFLA_MASTER", 4), ("IFLA_LINKINFO", linkinfo)],
    )
    assert ours == _sent(theirs, RTM_NEWLINK, flags)


@pytest.mark.parametrize(("family", "gateway"), [(socket.AF_INET, "10.1.0.1"), (socket.AF_INET6, "fd00::1")])
def test_default_route(family: int, gateway: str) -> None:
    flags = NLM_F_CREATE | NLM_F_EXCL
    fields = {
        "family": family,
        "dst_len": 0,
        "table": RT_TABLE_MAIN,
        "proto": RTPROT_BOOT,
        "scope": RT_SCOPE_UNIVERSE,
        "type": RTN_UNICAST,
    }
    theirs = _pyroute2("rtmsg", fields, [("RTA_GATEWAY", gateway), ("RTA_OIF", 3)])
    assert _sent(default_route_message(family, gateway, 3), RTM_NEWROUTE, flags) == _sent(
        theirs, RTM_NEWROUTE, flags
    )


def test_the_header_carries_type_flags_and_sequence() -> None:
    data = _sent(link_up_message(2), RTM_NEWLINK, NLM_F_CREATE)
    assert int.from_bytes(data[:4], "little") == len(data)
    assert int.from_bytes(data[4:6], "little") == RTM_NEWLINK
    assert int.from_bytes(data[6:8], "little") == FLAGS | NLM_F_CREATE
    assert int.from_bytes(data[8:12], "little") == 1
