"""RtnlSocket's request/reply exchange on a scripted socket (no kernel): acks, errors, dumps."""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest

from orchestrator.runtime.network.netlink import (
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_GETLINK,
    RTM_NEWLINK,
    RtnlSocket,
    _codecs,
    _message,
)


class ScriptedSocket:
    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.sent: list[bytes] = []

    def bind(self, address: Any) -> None:
        pass

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self, size: int) -> bytes:
        return self.replies.pop(0)

    def close(self) -> None:
        pass


def header(length: int, kind: int, sequence: int) -> bytes:
    return struct.pack("=IHHII", length, kind, 0, sequence, 0)


def error(code: int, sequence: int = 1) -> bytes:
    return header(36, NLMSG_ERROR, sequence) + struct.pack("=i", code) + b"\0" * 16


def link(name: str, index: int, sequence: int = 1) -> bytes:
    ifinfmsg, _, _ = _codecs()
    message = _message(ifinfmsg, {"index": index}, [("IFLA_IFNAME", name)])
    message["header"]["type"] = RTM_NEWLINK
    message["header"]["sequence_number"] = sequence
    message.encode()
    return bytes(message.data)


def test_an_ack_ends_a_request_and_an_error_is_an_oserror() -> None:
    ifinfmsg, _, _ = _codecs()
    sock = ScriptedSocket([error(0), error(-errno.EEXIST, 2)])
    rtnl = RtnlSocket(sock)  # type: ignore[arg-type]
    assert rtnl.request(_message(ifinfmsg, {"index": 1}, []), RTM_NEWLINK) == []
    with pytest.raises(OSError) as info:
        rtnl.request(_message(ifinfmsg, {"index": 1}, []), RTM_NEWLINK)
    assert info.value.errno == errno.EEXIST
    sent = struct.unpack_from("=IHHII", sock.sent[1])
    assert (sent[1], sent[3]) == (RTM_NEWLINK, 2)


def test_a_dump_collects_every_entry_across_reads_and_skips_other_sequences() -> None:
    ifinfmsg, _, _ = _codecs()
    stale = link("old", 9, sequence=7)
    first = stale + link("lo", 1) + link("eth0", 2)
    done = header(20, NLMSG_DONE, 1) + b"\0" * 4
    rtnl = RtnlSocket(ScriptedSocket([first, link("br0", 3) + done]))  # type: ignore[arg-type]
    links = rtnl.request(_message(ifinfmsg, {}, []), RTM_GETLINK, 0x300, ifinfmsg)
    assert [(m["index"], m.get_attr("IFLA_IFNAME")) for m in links] == [(1, "lo"), (2, "eth0"), (3, "br0")]


def test_a_link_lookup_reads_the_index_without_decoding_the_reply() -> None:
    from orchestrator.runtime.network.netlink import PyrouteLinkOps

    rtnl = RtnlSocket(ScriptedSocket([link("eth0", 4242) + error(0)]))  # type: ignore[arg-type]
    assert PyrouteLinkOps._lookup(rtnl, "eth0") == 4242
    gone = RtnlSocket(ScriptedSocket([error(-errno.ENODEV)]))  # type: ignore[arg-type]
    assert PyrouteLinkOps._lookup(gone, "eth9") is None
