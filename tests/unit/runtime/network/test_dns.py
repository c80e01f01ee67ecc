"""The resolver: who sees which names, answers, round-robin, PTR, forwarding (loopback only)."""

from __future__ import annotations

import random
import socket

import anyio
import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.runtime.network.dns import DnsRegistry, DnsServer


def registry() -> DnsRegistry:
    reg = DnsRegistry()
    reg.add("p-web-1", "p_front", ["web", "p-web-1", "web.p"], "10.0.1.2", None)
    reg.add("p-web-2", "p_front", ["web", "p-web-2", "web.p"], "10.0.1.3", "fd00::3")
    reg.add("p-api-1", "p_front", ["api", "API-Alias"], "10.0.1.4", None)
    reg.add("p-db-1", "p_back", ["db"], "10.0.2.2", None)
    reg.add("p-both-1", "p_front", ["both"], "10.0.1.9", None)
    reg.add("p-both-1", "p_back", ["both", "b2"], "10.0.2.9", None, upstreams=["198.51.100.1"])
    return reg


def ask(
    server: DnsServer, name: str, source: str, qtype: str = "A", network: str | None = None
) -> DNSRecord | None:
    packet = DNSRecord.question(name, qtype).pack()
    reply = server.answer_local(packet, source, network)
    return None if reply is None else DNSRecord.parse(reply)


def addresses(record: DNSRecord | None) -> list[str]:
    assert record is not None
    return [str(rr.rdata) for rr in record.rr]


def test_visibility_by_source_address() -> None:
    server = DnsServer(registry(), [], rng=random.Random(1))
    assert addresses(ask(server, "api", "10.0.1.2")) == ["10.0.1.4"]
    assert addresses(ask(server, "api-alias.", "10.0.1.2")) == ["10.0.1.4"]  # case and trailing dot
    assert ask(server, "db", "10.0.1.2") is None  # not on p_back: forwarded, not answered
    assert ask(server, "web", "10.0.2.2") is None
    # on both networks: sees both, whichever address it asks from
    assert addresses(ask(server, "db", "10.0.1.9")) == ["10.0.2.2"]
    assert addresses(ask(server, "api", "10.0.2.9")) == ["10.0.1.4"]
    # an unknown source sees the network whose gateway it asked
    assert addresses(ask(server, "db", "10.9.9.9", network="p_back")) == ["10.0.2.2"]
    assert ask(server, "db", "10.9.9.9", network="p_front") is None


def test_replicas_round_robin_and_record_types() -> None:
    server = DnsServer(registry(), [], rng=random.Random(3))
    orders = {tuple(addresses(ask(server, "web", "10.0.1.4"))) for _ in range(20)}
    assert orders == {("10.0.1.2", "10.0.1.3"), ("10.0.1.3", "10.0.1.2")}
    assert addresses(ask(server, "web.p", "10.0.1.4", "AAAA")) == ["fd00::3"]
    empty = ask(server, "api", "10.0.1.2", "AAAA")
    assert empty is not None and empty.header.rcode == RCODE.NOERROR and not empty.rr
    mx = ask(server, "api", "10.0.1.2", "MX")
    assert mx is not None and not mx.rr and mx.header.rcode == RCODE.NOERROR


def test_reverse_lookup() -> None:
    server = DnsServer(registry(), [])
    ptr = ask(server, "4.1.0.10.in-addr.arpa", "10.0.1.2", "PTR")
    assert ptr is not None and str(ptr.rr[0].rdata) == "api."
    assert ask(server, "2.2.0.10.in-addr.arpa", "10.0.1.2", "PTR") is None  # db is not visible


def test_registry_removal() -> None:
    reg = registry()
    reg.remove_container("p-web-1")
    assert [e.ipv4 for e in reg.lookup("web", "10.0.1.4") or []] == ["10.0.1.3"]
    reg.remove_container("p-both-1", network="p_back")
    assert reg.lookup("db", "10.0.1.9") is None
    assert reg.upstreams_for("10.0.1.9") == ("198.51.100.1",)
    reg.remove_network("p_front")
    assert reg.lookup("api", "10.0.2.2", "p_front") is None
    assert reg.upstreams_for("10.0.1.9") == ()
    assert reg.lookup("db", "10.0.2.2") is not None


async def _fake_upstream(
    answer: str, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
) -> None:
    async with await anyio.create_udp_socket(local_host="127.0.0.1", local_port=0) as sock:
        task_status.started(sock.extra(anyio.abc.SocketAttribute.local_port))
        async for packet, peer in sock:
            request = DNSRecord.parse(packet)
            reply = request.reply()
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(answer), ttl=30))
            await sock.sendto(reply.pack(), peer[0], peer[1])


async def _fake_tcp_upstream(answer: str, port: int) -> None:
    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            from anyio.streams.buffered import BufferedByteReceiveStream

            buffered = BufferedByteReceiveStream(stream)
            size = int.from_bytes(await buffered.receive_exactly(2), "big")
            request = DNSRecord.parse(await buffered.receive_exactly(size))
            reply = request.reply()
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(answer), ttl=30))
            data = reply.pack()
            await stream.send(len(data).to_bytes(2, "big") + data)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    await listener.serve(handle)


def _tcp_query(port: int, name: str) -> DNSRecord:
    packet = DNSRecord.question(name).pack()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(len(packet).to_bytes(2, "big") + packet)
        size = int.from_bytes(s.recv(2), "big")
        data = b""
        while len(data) < size:
            data += s.recv(size - len(data))
    return DNSRecord.parse(data)


def test_server_answers_and_forwards_over_udp_and_tcp() -> None:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            upstream_port = await tg.start(_fake_upstream, "203.0.113.5")
            tg.start_soon(_fake_tcp_upstream, "203.0.113.5", upstream_port)
            reg = registry()
            server = DnsServer(reg, ["127.0.0.1"], upstream_port=upstream_port, upstream_timeout=1)
            port = await tg.start(server.serve, "127.0.0.1", "p_front", 0)
            async with await anyio.create_connected_udp_socket("127.0.0.1", port) as client:
                await client.send(DNSRecord.question("api").pack())
                assert addresses(DNSRecord.parse(await client.receive())) == ["10.0.1.4"]
                await client.send(DNSRecord.question("example.org").pack())
                assert addresses(DNSRecord.parse(await client.receive())) == ["203.0.113.5"]
            tcp_local = await anyio.to_thread.run_sync(_tcp_query, port, "web.p")
            assert sorted(addresses(tcp_local)) == ["10.0.1.2", "10.0.1.3"]
            tcp_forwarded = await anyio.to_thread.run_sync(_tcp_query, port, "example.org")
            assert addresses(tcp_forwarded) == ["203.0.113.5"]
            tg.cancel_scope.cancel()

    anyio.run(main)


def test_dead_upstream_gives_servfail() -> None:
    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))  # receives, never answers
            server = DnsServer(
                DnsRegistry(), ["127.0.0.1"], upstream_port=silent.getsockname()[1], upstream_timeout=0.2
            )
            reply = await server.resolve(DNSRecord.question("example.org").pack(), "10.0.0.2", None)
        assert reply is not None and DNSRecord.parse(reply).header.rcode == RCODE.SERVFAIL

    anyio.run(main)


@pytest.mark.parametrize("garbage", [b"", b"\x00\x01", b"not dns at all"])
def test_garbage_is_not_answered_locally(garbage: bytes) -> None:
    assert DnsServer(registry(), []).answer_local(garbage, "10.0.1.2", None) is None


def test_garbage_does_not_stop_the_server() -> None:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            server = DnsServer(registry(), [])
            port = await tg.start(server.serve, "127.0.0.1", "p_front", 0)
            async with await anyio.create_connected_udp_socket("127.0.0.1", port) as client:
                for junk in (b"", b"\xff" * 3, b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c"):
                    await client.send(junk)
                await client.send(DNSRecord.question("api").pack())
                with anyio.fail_after(5):
                    while True:  # skip any reply to the junk
                        reply = DNSRecord.parse(await client.receive())
                        if reply.rr:
                            break
                assert [str(rr.rdata) for rr in reply.rr] == ["10.0.1.4"]
            tg.cancel_scope.cancel()

    anyio.run(main)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_answer_local_never_raises(data: bytes) -> None:
    reply = DnsServer(registry(), []).answer_local(data, "10.0.1.2", "p_front")
    assert reply is None or isinstance(reply, bytes)
