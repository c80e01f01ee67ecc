"""The userland proxy on loopback: TCP (splice) and UDP relays, port choice, conflicts."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import anyio
import pytest

from orchestrator.errors import ConflictError
from orchestrator.runtime.network.proxy import PortProxy, find_port_holder
from orchestrator.runtime.network.spec import PortSpec


async def _tcp_echo(*, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                while True:
                    await stream.send(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
    await listener.serve(handle)


async def _udp_echo(*, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
    async with await anyio.create_udp_socket(local_host="127.0.0.1", local_port=0) as sock:
        task_status.started(sock.extra(anyio.abc.SocketAttribute.local_port))
        async for data, peer in sock:
            await sock.sendto(data.upper(), peer[0], peer[1])


def _roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(1 << 16):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("threaded", [32, 0], ids=["threads", "event-loop"])
def test_tcp_and_udp_through_the_proxy(threaded: int) -> None:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tcp_target = await tg.start(_tcp_echo)
            udp_target = await tg.start(_udp_echo)
            proxy = PortProxy(tg, udp_idle=0.5, ipv6=False, threaded_connections=threaded)
            bindings = proxy.publish(
                "c1",
                "127.0.0.1",
                [PortSpec(tcp_target, None, "127.0.0.1"), PortSpec(udp_target, None, "127.0.0.1", "udp")],
            )
            tcp_port, udp_port = bindings[0].host_port, bindings[1].host_port
            assert tcp_port not in (0, tcp_target) and bindings[1].protocol == "udp"
            payload = os.urandom(3 << 20)
            assert await anyio.to_thread.run_sync(_roundtrip, tcp_port, payload) == payload
            async with await anyio.create_connected_udp_socket("127.0.0.1", udp_port) as client:
                await client.send(b"hello")
                with anyio.fail_after(5):
                    assert await client.receive() == b"HELLO"
            assert [str(b) for b in proxy.bindings("c1")] == [
                f"127.0.0.1:{tcp_port}",
                f"127.0.0.1:{udp_port}",
            ]
            await proxy.unpublish("c1")
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", tcp_port), timeout=2)
            assert proxy.bindings() == []
            tg.cancel_scope.cancel()

    anyio.run(main)


def test_port_range_takes_the_next_free_port_and_conflicts_name_the_holder() -> None:
    async def main() -> None:
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        try:
            async with anyio.create_task_group() as tg:
                proxy = PortProxy(tg, ipv6=False)
                [binding] = proxy.publish(
                    "c1", "127.0.0.1", [PortSpec(80, f"{taken}-{taken + 1}", "127.0.0.1")]
                )
                assert binding.host_port == taken + 1
                with pytest.raises(ConflictError) as err:
                    proxy.publish("c2", "127.0.0.1", [PortSpec(80, str(taken), "127.0.0.1")])
                expected = (
                    f"cannot publish 127.0.0.1:{taken}/tcp -> 80: host port {taken} is already in use "
                    f"by pid {os.getpid()} ("
                )
                assert str(err.value).startswith(expected)
                with pytest.raises(ConflictError, match=re.escape(f"every host port in {taken}-{taken + 1}")):
                    proxy.publish("c3", "127.0.0.1", [PortSpec(81, f"{taken}-{taken + 1}", "127.0.0.1")])
                # all or nothing: a failing second port releases the first
                with pytest.raises(ConflictError):
                    proxy.publish(
                        "c4",
                        "127.0.0.1",
                        [PortSpec(82, None, "127.0.0.1"), PortSpec(83, str(taken), "127.0.0.1")],
                    )
                assert proxy.bindings("c4") == []
                await proxy.aclose()
                tg.cancel_scope.cancel()
        finally:
            holder.close()

    anyio.run(main)


def test_find_port_holder_reads_proc(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    header = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    )
    row = (
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n"
    )
    (tmp_path / "net" / "tcp").write_text(header + row)
    (tmp_path / "net" / "tcp6").write_text(header)
    pid = tmp_path / "321"
    (pid / "fd").mkdir(parents=True)
    (pid / "comm").write_text("nginx\n")
    os.symlink("socket:[4242]", pid / "fd" / "5")
    assert find_port_holder(8080, "tcp", proc=tmp_path) == "pid 321 (nginx)"
    assert find_port_holder(8081, "tcp", proc=tmp_path) is None
    assert find_port_holder(8080, "udp", proc=tmp_path) is None


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_ipv6_host_addresses() -> None:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            target = await tg.start(_tcp_echo)
            proxy = PortProxy(tg, ipv6=True)
            v6_only = proxy.publish("c1", "127.0.0.1", [PortSpec(target, None, "::1")])
            assert [str(b) for b in v6_only] == [f"[::1]:{v6_only[0].host_port}"]
            both = proxy.publish("c2", "127.0.0.1", [PortSpec(target)])
            assert [b.host_ip for b in both] == ["0.0.0.0", "::"]
            assert both[0].host_port == both[1].host_port

            def over_v6(port: int) -> bytes:
                with socket.create_connection(("::1", port), timeout=5) as s:
                    s.sendall(b"six")
                    s.shutdown(socket.SHUT_WR)
                    return s.recv(16)

            assert await anyio.to_thread.run_sync(over_v6, v6_only[0].host_port) == b"six"
            assert await anyio.to_thread.run_sync(over_v6, both[1].host_port) == b"six"
            await proxy.aclose()
            tg.cancel_scope.cancel()

    anyio.run(main)


def test_udp_port_held_by_another_socket_is_a_conflict() -> None:
    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.bind(("127.0.0.1", 0))
            taken = holder.getsockname()[1]
            async with anyio.create_task_group() as tg:
                proxy = PortProxy(tg, ipv6=False)
                with pytest.raises(
                    ConflictError, match=f"host port {taken} is already in use by pid {os.getpid()}"
                ):
                    proxy.publish("c1", "127.0.0.1", [PortSpec(53, str(taken), "127.0.0.1", "udp")])
                tg.cancel_scope.cancel()

    anyio.run(main)


@pytest.mark.parametrize("threaded", [32, 0], ids=["threads", "event-loop"])
def test_unpublish_closes_open_connections(threaded: int) -> None:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            target = await tg.start(_tcp_echo)
            proxy = PortProxy(tg, ipv6=False, threaded_connections=threaded)
            [binding] = proxy.publish("c1", "127.0.0.1", [PortSpec(target, None, "127.0.0.1")])
            client = await anyio.connect_tcp("127.0.0.1", binding.host_port)
            await client.send(b"hi")
            assert await client.receive() == b"hi"
            with anyio.fail_after(5):
                await proxy.unpublish("c1")  # returns although the connection is idle and open
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError)):
                    await client.receive()
            await client.aclose()
            tg.cancel_scope.cancel()

    anyio.run(main)
