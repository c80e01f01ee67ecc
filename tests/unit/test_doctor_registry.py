"""The doctor's registry ping against a registry stand-in on loopback (no root, no other host)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from orchestrator.errors import OrcError
from orchestrator.runtime.doctor import LocalHost, RegistryPing, Status
from orchestrator.runtime.doctor.checks import check_registry


class _V2Only(BaseHTTPRequestHandler):
    """Answers ``GET /v2/`` like a registry that wants a token; everything else is a 404."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path == "/v2/":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="http://127.0.0.1/token",service="test"')
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_V2Only,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_ping_reaches_only_v2_and_reads_the_challenge(registry: tuple[str, list[str]]) -> None:
    host, seen = registry
    answer = LocalHost(registry_timeout=5.0).ping_registry(host)
    assert answer == RegistryPing("http", "bearer")
    assert set(seen) == {"/v2/"}
    result = check_registry(host, LocalHost(registry_timeout=5.0).ping_registry)
    assert result.status is Status.OK
    assert result.summary == f"{host} answers /v2/ over http (asks for bearer auth)"


def test_closed_port_is_a_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    host = f"127.0.0.1:{port}"
    with pytest.raises(OrcError):
        LocalHost(registry_timeout=2.0).ping_registry(host)
    result = check_registry(host, LocalHost(registry_timeout=2.0).ping_registry)
    assert result.status is Status.FAIL
    assert result.summary.count(host) == 1
