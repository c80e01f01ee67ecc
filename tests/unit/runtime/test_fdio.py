"""runtime.fdio: descriptors awaited in the event loop, and the sockets the supervisor serves on."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from orchestrator.runtime import fdio


def test_wait_readable_returns_once_there_is_data_and_not_before() -> None:
    read, write = os.pipe2(os.O_NONBLOCK)

    async def main() -> list[str]:
        seen: list[str] = []

        async def reader() -> None:
            await fdio.wait_readable(read)
            seen.append(os.read(read, 10).decode())

        async with anyio.create_task_group() as group:
            group.start_soon(reader)
            await anyio.sleep(0.05)
            seen.append("nothing yet")
            os.write(write, b"ping")
        return seen

    try:
        assert anyio.run(main) == ["nothing yet", "ping"]
    finally:
        os.close(read)
        os.close(write)


def test_a_cancelled_wait_unregisters_so_the_descriptor_can_be_awaited_again() -> None:
    read, write = os.pipe2(os.O_NONBLOCK)

    async def main() -> None:
        with anyio.move_on_after(0.05):
            await fdio.wait_readable(read)
        os.write(write, b"x")
        with anyio.fail_after(2):
            await fdio.wait_readable(read)

    try:
        anyio.run(main)
    finally:
        os.close(read)
        os.close(write)


def test_two_readers_of_one_descriptor_is_an_error_but_a_reader_and_a_writer_are_not() -> None:
    left, right = socket.socketpair()

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(fdio.wait_readable, left)
            await anyio.sleep(0.02)
            with pytest.raises(anyio.BusyResourceError):
                await fdio.wait_readable(left)
            with anyio.fail_after(2):
                await fdio.wait_writable(left)  # an empty socket buffer: writable at once
            right.send(b"x")

    with left, right:
        anyio.run(main)


def test_unix_listener_streams_with_descriptors_and_eof(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    got: list[object] = []

    async def handler(stream: fdio.SocketStream) -> None:
        async with stream:
            first, fds = await stream.receive_fds(100, 3)
            got.append(first)
            got.append([os.read(fd, 10) for fd in fds])
            for fd in fds:
                os.close(fd)
            buffered = BufferedByteReceiveStream(stream)
            buffered.feed_data(b"")
            got.append(await buffered.receive_until(b"\n", 100))
            await stream.send(b"reply " * 50_000)  # more than a socket buffer holds
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()

    def client() -> bytes:
        read, write = os.pipe()
        os.write(write, b"stdin")
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            socket.send_fds(sock, [b"hello"], [read])
            sock.sendall(b"line\n")
            chunks = []
            total = 0
            while total < 6 * 50_000:
                chunk = sock.recv(65536)
                assert chunk
                chunks.append(chunk)
                total += len(chunk)
            sock.shutdown(socket.SHUT_WR)
        os.close(read)
        os.close(write)
        return b"".join(chunks)

    async def main() -> bytes:
        async with fdio.unix_listener(path) as listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, handler)
            reply = await anyio.to_thread.run_sync(client)
            with anyio.fail_after(5):
                while len(got) < 3:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.05)  # the handler's EndOfStream check
            group.cancel_scope.cancel()
        return reply

    reply = anyio.run(main)
    assert reply == b"reply " * 50_000
    assert got == [b"hello", [b"stdin"], b"line"]


def test_a_peer_that_hung_up_is_a_broken_stream_and_a_closed_one_is_closed() -> None:
    left, right = socket.socketpair()

    async def main() -> None:
        stream = fdio.SocketStream(left)
        right.close()
        with pytest.raises(anyio.BrokenResourceError):
            for _ in range(100):
                await stream.send(b"x" * 65536)
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()

    anyio.run(main)


def test_tcp_connect_listen_and_a_refused_connection() -> None:
    async def main() -> tuple[bytes, str]:
        listener = fdio.tcp_listener("127.0.0.1", 0)
        port = listener.socket.getsockname()[1]

        async def echo(stream: fdio.SocketStream) -> None:
            async with stream:
                await stream.send(stream.remote_host.encode() + b" " + await stream.receive())

        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, echo)
            async with await fdio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"hi")
                reply = await client.receive()
            group.cancel_scope.cancel()
        with pytest.raises(OSError) as refused:
            await fdio.connect_tcp("127.0.0.1", port)  # nothing listens there any more
        return reply, str(refused.value)

    reply, refused = anyio.run(main)
    assert reply == b"127.0.0.1 hi"
    assert "refused" in refused.lower()


def test_udp_datagrams_both_ways() -> None:
    async def main() -> tuple[bytes, bytes]:
        server = fdio.udp_socket("127.0.0.1", 0)
        with server:
            client = fdio.connect_udp("127.0.0.1", server.getsockname()[1])
            with client:
                await fdio.send_datagram(client, b"question")
                with anyio.fail_after(2):
                    asked, peer = await fdio.receive_datagram(server)
                await fdio.send_datagram(server, b"answer", peer)
                with anyio.fail_after(2):
                    answered, _ = await fdio.receive_datagram(client)
        return asked, answered

    assert anyio.run(main) == (b"question", b"answer")
