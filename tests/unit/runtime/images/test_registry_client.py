"""Registry client rules that need no registry: scheme choice, auth header, progress rendering.

(Behaviour against a real registry is in tests/integration/images.)
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest

from orchestrator.cli.verb_images import PullProgress
from orchestrator.runtime.images.pull import PullEvent
from orchestrator.runtime.images.reference import parse_reference
from orchestrator.runtime.images.registry import (
    DEFAULT_CERTS_DIRS,
    AuthError,
    RegistryClient,
    RegistryError,
    RegistryOptions,
    RegistryUnavailable,
    options_from_environment,
)


async def _no_sleep(_s: float) -> None:
    return None


def fetch(host: str, insecure: frozenset[str] = frozenset()) -> list[str]:
    """The URLs the client tries for a manifest on ``host`` when every connection fails."""
    tried: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tried.append(str(request.url))
        raise httpx.ConnectError("refused", request=request)

    options = RegistryOptions(
        transport=httpx.MockTransport(handler), insecure_registries=insecure, retries=0, sleep=_no_sleep
    )

    async def main() -> None:
        async with RegistryClient(options) as client:
            with pytest.raises(RegistryUnavailable):
                await client.get_manifest(parse_reference(f"{host}/a/b:1"))

    anyio.run(main)
    return tried


def test_plain_http_only_for_loopback_or_insecure_hosts() -> None:
    assert fetch("registry.example.com:5000") == ["https://registry.example.com:5000/v2/"]
    assert fetch("127.0.0.1:5000") == ["https://127.0.0.1:5000/v2/", "http://127.0.0.1:5000/v2/"]
    assert fetch("localhost:5000") == ["https://localhost:5000/v2/", "http://localhost:5000/v2/"]
    assert fetch("10.1.2.3:5000", frozenset({"10.1.2.3:5000"})) == [
        "https://10.1.2.3:5000/v2/",
        "http://10.1.2.3:5000/v2/",
    ]


def test_docker_hub_api_host() -> None:
    assert fetch("docker.io") == ["https://registry-1.docker.io/v2/"]


def test_json_and_plain_progress(capsys: pytest.CaptureFixture[str]) -> None:
    events = [
        PullEvent("resolved", "r", message="sha256:top"),
        PullEvent("downloading", "r", "sha256:" + "a" * 64, 0, 10),
        PullEvent("downloading", "r", "sha256:" + "a" * 64, 5, 10),
        PullEvent("downloading", "r", "sha256:" + "a" * 64, 10, 10),
        PullEvent("done", "r", "sha256:" + "a" * 64, 10, 10),
    ]
    with PullProgress("json") as progress:
        for e in events:
            progress(e)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["event"], r["current"]) for r in lines] == [
        ("resolved", 0),
        ("downloading", 0),
        ("downloading", 5),
        ("downloading", 10),
        ("done", 10),
    ]
    with PullProgress("plain") as progress:
        for e in events:
            progress(e)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "r: resolved sha256:top",
        "aaaaaaaaaaaa: downloading 0/10",
        "aaaaaaaaaaaa: downloading 10/10",
        "aaaaaaaaaaaa: pull complete",
    ]
    with PullProgress("quiet") as progress:
        progress(events[0])
    assert capsys.readouterr() == ("", "")


def test_options_from_the_environment(tmp_path: Path) -> None:
    options = options_from_environment(
        {"DOCKER_CONFIG": str(tmp_path), "ORC_INSECURE_REGISTRIES": "a:1, b:2,", "ORC_CERTS_DIR": "/c"},
        Path("/home/x"),
        retries=1,
    )
    assert options.credentials.path == tmp_path / "config.json"
    assert options.insecure_registries == frozenset({"a:1", "b:2"})
    assert options.certs_dirs == (Path("/c"),) and options.retries == 1
    defaults = options_from_environment({}, Path("/home/x"))
    assert defaults.credentials.path == Path("/home/x/.docker/config.json")
    assert defaults.insecure_registries == frozenset() and defaults.certs_dirs == DEFAULT_CERTS_DIRS


def test_bad_token_realm_and_bad_ca_files(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):  # what httpx's real transports do
            raise httpx.UnsupportedProtocol("unsupported", request=request)
        challenge = 'Bearer realm="ftp://nowhere/token",service="s"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    async def main(options: RegistryOptions) -> None:
        async with RegistryClient(options) as client:
            await client.get_manifest(parse_reference("registry.example.com/a/b:1"))

    options = RegistryOptions(transport=httpx.MockTransport(handler), retries=0, sleep=_no_sleep)
    with pytest.raises(AuthError, match="not http"):
        anyio.run(main, options)

    certs = tmp_path / "certs.d" / "registry.example.com"
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_text("not a certificate")
    options = RegistryOptions(transport=httpx.MockTransport(handler), certs_dirs=(tmp_path / "certs.d",))
    with pytest.raises(RegistryError, match="cannot load the TLS files"):
        anyio.run(main, options)
