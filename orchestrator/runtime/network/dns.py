"""orc's embedded DNS resolver: container names on orc networks, everything else forwarded.

``DnsRegistry`` holds, per network, which names point at which endpoint addresses (service
name, container name, hostname, ``<service>.<project>``, aliases; every replica of a service
under the same name, so a scaled service gets round-robin A records). Who may see what is decided
by the *source address* of a query: an asker sees the names of every network it has an endpoint
on, and nothing else; a source orc does not know sees the network whose gateway it asked.

``DnsServer.serve`` answers on one address (a network's gateway), UDP and TCP, port 53 by
default; unknown names go to the asker's own ``dns:`` servers if it has any, else to the host's
resolvers (from /etc/resolv.conf). The wire format is dnslib's. The registry is written by the
driver from worker threads and read by the server in the event loop, so it swaps immutable
snapshots under a lock. The randomness of the round-robin order is injected.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from orchestrator.runtime import fdio

DEFAULT_TTL = 600
UPSTREAM_TIMEOUT = 2.0


@dataclass(frozen=True)
class DnsEntry:
    container: str
    network: str
    names: tuple[str, ...]
    ipv4: str | None
    ipv6: str | None


@dataclass(frozen=True)
class _Snapshot:
    entries: tuple[DnsEntry, ...] = ()
    upstreams: dict[str, tuple[str, ...]] = field(default_factory=dict)  # container -> dns servers


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


class DnsRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap = _Snapshot()

    def add(
        self,
        container: str,
        network: str,
        names: Sequence[str],
        ipv4: str | None,
        ipv6: str | None,
        upstreams: Sequence[str] = (),
    ) -> None:
        entry = DnsEntry(container, network, tuple(dict.fromkeys(_norm(n) for n in names if n)), ipv4, ipv6)
        with self._lock:
            kept = tuple(
                e for e in self._snap.entries if not (e.container == container and e.network == network)
            )
            ups = dict(self._snap.upstreams)
            if upstreams:
                ups[container] = tuple(upstreams)
            self._snap = _Snapshot((*kept, entry), ups)

    def remove_container(self, container: str, network: str | None = None) -> None:
        with self._lock:
            kept = tuple(
                e
                for e in self._snap.entries
                if not (e.container == container and (network is None or e.network == network))
            )
            ups = dict(self._snap.upstreams)
            if not any(e.container == container for e in kept):
                ups.pop(container, None)
            self._snap = _Snapshot(kept, ups)

    def remove_network(self, network: str) -> None:
        with self._lock:
            kept = tuple(e for e in self._snap.entries if e.network != network)
            live = {e.container for e in kept}
            ups = {c: u for c, u in self._snap.upstreams.items() if c in live}
            self._snap = _Snapshot(kept, ups)

    def entries(self) -> tuple[DnsEntry, ...]:
        return self._snap.entries

    def _asker(self, snap: _Snapshot, source: str) -> list[DnsEntry]:
        """Every entry of the container(s) owning ``source``: a container on two networks asks
        through one of them but sees both."""
        owners = {e.container for e in snap.entries if source in (e.ipv4, e.ipv6)}
        return [e for e in snap.entries if e.container in owners]

    def visible_networks(self, source: str, fallback_network: str | None) -> set[str]:
        mine = {e.network for e in self._asker(self._snap, source)}
        if mine:
            return mine
        return {fallback_network} if fallback_network else set()

    def lookup(self, name: str, source: str, fallback_network: str | None = None) -> list[DnsEntry] | None:
        """Endpoints named ``name`` that ``source`` may see; None if the name is not orc's."""
        wanted = _norm(name)
        nets = self.visible_networks(source, fallback_network)
        found = [e for e in self._snap.entries if e.network in nets and wanted in e.names]
        return found or None

    def reverse(self, address: str, source: str, fallback_network: str | None = None) -> str | None:
        nets = self.visible_networks(source, fallback_network)
        for e in self._snap.entries:
            if e.network in nets and address in (e.ipv4, e.ipv6) and e.names:
                return e.names[0]
        return None

    def upstreams_for(self, source: str) -> tuple[str, ...]:
        snap = self._snap
        for e in self._asker(snap, source):
            if e.container in snap.upstreams:
                return snap.upstreams[e.container]
        return ()


def _reverse_name(qname: str) -> str | None:
    name = _norm(qname)
    if name.endswith(".in-addr.arpa"):
        parts = name[: -len(".in-addr.arpa")].split(".")
        try:
            return str(ipaddress.IPv4Address(".".join(reversed(parts))))
        except ValueError:
            return None
    if name.endswith(".ip6.arpa"):
        nibbles = name[: -len(".ip6.arpa")].split(".")
        if len(nibbles) != 32:
            return None
        hexs = "".join(reversed(nibbles))
        try:
            return str(ipaddress.IPv6Address(int(hexs, 16)))
        except ValueError:
            return None
    return None


class DnsServer:
    """Answers from a registry; forwards the rest. One instance may serve many addresses."""

    def __init__(
        self,
        registry: DnsRegistry,
        host_upstreams: Sequence[str],
        rng: random.Random | None = None,
        upstream_port: int = 53,
        upstream_timeout: float = UPSTREAM_TIMEOUT,
    ) -> None:
        self.registry = registry
        self.host_upstreams = tuple(host_upstreams)
        self.rng = rng or random.Random()
        self.upstream_port = upstream_port
        self.upstream_timeout = upstream_timeout

    # -- answering ----------------------------------------------------------------------------

    def answer_local(self, packet: bytes, source: str, network: str | None) -> bytes | None:
        """The reply for a query orc can answer itself, or None to forward it."""
        from dnslib import AAAA, PTR, QTYPE, RCODE, RR, A, DNSRecord

        try:
            request = DNSRecord.parse(packet)
        except Exception:
            return None
        if not request.questions:
            return None
        question = request.questions[0]
        qname = str(question.qname)
        reply = request.reply()
        reply.header.ra = 1
        if question.qtype == QTYPE.PTR:
            address = _reverse_name(qname)
            target = self.registry.reverse(address, source, network) if address else None
            if target is None:
                return None
            reply.add_answer(RR(question.qname, QTYPE.PTR, ttl=DEFAULT_TTL, rdata=PTR(target + ".")))
            return bytes(reply.pack())
        found = self.registry.lookup(qname, source, network)
        if found is None:
            return None
        found = list(found)
        self.rng.shuffle(found)
        if question.qtype in (QTYPE.A, QTYPE.ANY):
            for e in found:
                if e.ipv4:
                    reply.add_answer(RR(question.qname, QTYPE.A, ttl=DEFAULT_TTL, rdata=A(e.ipv4)))
        if question.qtype in (QTYPE.AAAA, QTYPE.ANY):
            for e in found:
                if e.ipv6:
                    reply.add_answer(RR(question.qname, QTYPE.AAAA, ttl=DEFAULT_TTL, rdata=AAAA(e.ipv6)))
        reply.header.rcode = RCODE.NOERROR  # a known name with no record of that type: empty answer
        return bytes(reply.pack())

    def _servfail(self, packet: bytes) -> bytes | None:
        from dnslib import RCODE, DNSRecord

        try:
            request = DNSRecord.parse(packet)
        except Exception:
            return None
        reply = request.reply()
        reply.header.ra = 1
        reply.header.rcode = RCODE.SERVFAIL
        return bytes(reply.pack())

    async def _forward_udp(self, packet: bytes, upstream: str) -> bytes:
        sock = fdio.connect_udp(upstream, self.upstream_port)
        with sock:
            await fdio.send_datagram(sock, packet)
            while True:
                reply, _peer = await fdio.receive_datagram(sock)
                if reply[:2] == packet[:2]:  # same query id
                    return reply

    async def _forward_tcp(self, packet: bytes, upstream: str) -> bytes:
        async with await fdio.connect_tcp(upstream, self.upstream_port) as stream:
            await stream.send(len(packet).to_bytes(2, "big") + packet)
            buffered = BufferedByteReceiveStream(stream)
            size = int.from_bytes(await buffered.receive_exactly(2), "big")
            return await buffered.receive_exactly(size)

    async def resolve(
        self, packet: bytes, source: str, network: str | None, tcp: bool = False
    ) -> bytes | None:
        local = self.answer_local(packet, source, network)
        if local is not None:
            return local
        upstreams = self.registry.upstreams_for(source) or self.host_upstreams
        for upstream in upstreams:
            try:
                with anyio.fail_after(self.upstream_timeout):
                    if tcp:
                        return await self._forward_tcp(packet, upstream)
                    return await self._forward_udp(packet, upstream)
            except (
                TimeoutError,
                OSError,
                anyio.EndOfStream,
                anyio.IncompleteRead,
                anyio.BrokenResourceError,
            ):
                continue
        return self._servfail(packet)

    # -- serving ------------------------------------------------------------------------------

    async def serve(
        self,
        address: str,
        network: str | None,
        port: int = 53,
        *,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``address:port`` (UDP and TCP) until cancelled. Reports the bound port."""
        udp = fdio.udp_socket(address, port)
        try:
            bound = int(udp.getsockname()[1])
            tcp = fdio.tcp_listener(address, bound)
        except BaseException:
            udp.close()
            raise
        send_lock = anyio.Lock()  # one task waits for the socket to take a reply at a time
        with udp:
            async with tcp, anyio.create_task_group() as tg:
                task_status.started(bound)
                tg.start_soon(self._serve_tcp, tcp, network)
                while True:
                    packet, (host, peer_port) = await fdio.receive_datagram(udp)
                    tg.start_soon(self._answer_udp, udp, send_lock, packet, host, peer_port, network)

    async def _answer_udp(
        self,
        udp: socket.socket,
        send_lock: anyio.Lock,
        packet: bytes,
        host: str,
        port: int,
        network: str | None,
    ) -> None:
        try:
            reply = await self.resolve(packet, host, network)
        except Exception:
            return  # one malformed query must not take the resolver down for everyone
        if reply is not None:
            with contextlib.suppress(OSError):
                async with send_lock:
                    await fdio.send_datagram(udp, reply, (host, port))

    async def _serve_tcp(self, listener: fdio.SocketListener, network: str | None) -> None:
        async def handle(stream: fdio.SocketStream) -> None:
            async with stream:
                try:
                    source = stream.remote_host
                except OSError:
                    return  # gone before we looked
                buffered = BufferedByteReceiveStream(stream)
                try:
                    while True:
                        size = int.from_bytes(await buffered.receive_exactly(2), "big")
                        packet = await buffered.receive_exactly(size)
                        try:
                            reply = await self.resolve(packet, source, network, tcp=True)
                        except Exception:
                            return  # drop this connection only
                        if reply is None:
                            return
                        await stream.send(len(reply).to_bytes(2, "big") + reply)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, OSError):
                    return

        await listener.serve(handle)
