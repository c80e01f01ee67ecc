"""Manifests, indexes, platform selection, image configs, auth challenges, credentials, tokens."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from orchestrator.errors import NotFoundError
from orchestrator.runtime.images.auth import (
    Credentials,
    CredentialsError,
    Login,
    TokenCache,
    parse_challenges,
)
from orchestrator.runtime.images.config import ImageConfigError, parse_image_config
from orchestrator.runtime.images.manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    ImageIndex,
    ImageManifest,
    ManifestError,
    layer_compression,
    parse_manifest,
    select_platform,
)
from orchestrator.runtime.images.reference import Platform


def d(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def entry(
    n: int, os_: str, arch: str, variant: str | None = None, media: str = DOCKER_MANIFEST
) -> dict[str, object]:
    platform: dict[str, str] = {"os": os_, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return {"mediaType": media, "digest": d(n), "size": 10, "platform": platform}


def test_docker_manifest_list_and_platform_selection() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            entry(1, "linux", "amd64"),
            entry(2, "linux", "arm", "v6"),
            entry(3, "linux", "arm", "v7"),
            entry(4, "linux", "arm64", "v8"),
            entry(5, "unknown", "unknown"),
        ],
    }
    index = parse_manifest(json.dumps(doc).encode())
    assert isinstance(index, ImageIndex) and index.media_type == DOCKER_LIST
    assert select_platform(index, Platform("linux", "amd64")).digest == d(1)
    assert select_platform(index, Platform("linux", "arm", "v7")).digest == d(3)
    assert select_platform(index, Platform("linux", "arm64")).digest == d(4)
    with pytest.raises(NotFoundError, match=r"linux/ppc64le .*offered: linux/amd64, linux/arm/v6"):
        select_platform(index, Platform("linux", "ppc64le"))


def test_oci_manifest_sniffed_without_media_type() -> None:
    doc = {
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(9), "size": 3},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": d(1), "size": 5},
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": d(2), "size": 6},
            {"mediaType": "application/x-custom", "digest": d(3), "size": 6},
        ],
    }
    manifest = parse_manifest(json.dumps(doc).encode(), "application/vnd.oci.image.manifest.v1+json")
    assert isinstance(manifest, ImageManifest)
    assert manifest.config.digest == d(9)
    assert [layer_compression(layer) for layer in manifest.layers] == ["zstd", "gzip", "unknown"]
    # an index with no mediaType field and no content type is recognised by shape
    assert isinstance(parse_manifest(json.dumps({"schemaVersion": 2, "manifests": []}).encode()), ImageIndex)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), "schema-1"),
        (
            json.dumps({"mediaType": OCI_INDEX, "manifests": [{"digest": "sha256:12", "size": 1}]}).encode(),
            "bad descriptor",
        ),
        (
            json.dumps({"mediaType": OCI_INDEX, "manifests": [{"digest": d(1), "size": -1}]}).encode(),
            "negative size",
        ),
        (json.dumps({"mediaType": "application/x-what"}).encode(), "unsupported manifest media type"),
    ],
)
def test_bad_manifests(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(data)


def test_image_config_fields() -> None:
    doc = {
        "architecture": "arm",
        "variant": "v7",
        "os": "linux",
        "config": {
            "Entrypoint": ["/entry"],
            "Cmd": None,
            "Env": ["A=1", "B", "A=2"],
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "Healthcheck": {"Test": ["NONE"]},
        },
        "rootfs": {"type": "layers", "diff_ids": [d(1)]},
    }
    cfg = parse_image_config(json.dumps(doc).encode())
    assert cfg.entrypoint == ("/entry",) and cfg.cmd is None
    assert cfg.env_dict() == {"A": "2", "B": ""}
    assert cfg.exposed_ports == ("53/udp", "80/tcp")
    assert cfg.healthcheck is not None and cfg.healthcheck.test == ("NONE",)
    assert (cfg.architecture, cfg.variant, cfg.diff_ids) == ("arm", "v7", (d(1),))
    with pytest.raises(ImageConfigError, match="diff_ids"):
        parse_image_config(b'{"config": {}}')


def test_challenges() -> None:
    [bearer] = parse_challenges(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull",
    }
    basic, bearer2 = parse_challenges(
        'Basic realm="x y", Bearer realm="https://t", error="insufficient_scope"'
    )
    assert (basic.scheme, basic.params) == ("basic", {"realm": "x y"})
    assert bearer2.params["error"] == "insufficient_scope"
    assert parse_challenges('Bearer realm="a\\"b"')[0].params["realm"] == 'a"b'


def test_credentials_from_docker_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
                    "127.0.0.1:5000": {"auth": base64.b64encode(b"me:p:w").decode()},
                    "https://ghcr.io": {"username": "u", "password": "t"},
                    "broken.io": {"auth": "!!!"},
                }
            }
        )
    )
    creds = Credentials(cfg)
    assert creds.lookup("registry-1.docker.io") is not None
    assert creds.lookup("registry-1.docker.io").username == "hub"  # type: ignore[union-attr]
    login = creds.lookup("127.0.0.1:5000")
    assert login is not None and (login.username, login.password) == ("me", "p:w")
    assert creds.lookup("ghcr.io") is not None
    assert creds.lookup("broken.io") is None and creds.lookup("other.io") is None
    assert Credentials(tmp_path / "missing.json").lookup("x") is None
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CredentialsError):
        Credentials(tmp_path / "bad.json").lookup("x")


def test_token_cache_expires_on_the_injected_clock() -> None:
    now = [1000.0]
    cache = TokenCache(lambda: now[0])
    cache.put("realm", "svc", "repository:a:pull", "tok", expires_in=300)
    assert cache.get("realm", "svc", "repository:a:pull") == "tok"
    assert cache.get("realm", "svc", "repository:b:pull") is None
    now[0] += 289
    assert cache.get("realm", "svc", "repository:a:pull") == "tok"
    now[0] += 2  # within 10 s of expiry: fetch a fresh one
    assert cache.get("realm", "svc", "repository:a:pull") is None
    cache.put("realm", "svc", "s", "short", expires_in=5)  # tokens are kept at least 60 s
    now[0] += 40
    assert cache.get("realm", "svc", "s") == "short"


def test_credential_helpers_take_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "auths": {"a.io": {"auth": base64.b64encode(b"inline:pw").decode()}, "b.io": {}},
                "credHelpers": {"a.io": "pass", "index.docker.io": "hub"},
            }
        )
    )
    asked: list[tuple[str, str]] = []

    def runner(helper: str, server: str) -> str | None:
        asked.append((helper, server))
        return {
            "a.io": json.dumps({"Username": "helped", "Secret": "s3"}),
            "https://index.docker.io/v1/": json.dumps({"Username": "<token>", "Secret": "refresh"}),
        }.get(server)

    creds = Credentials(cfg, runner)
    assert creds.lookup("a.io") == Login("helped", "s3")
    assert creds.lookup("a.io") == Login("helped", "s3")  # asked once
    assert creds.lookup("registry-1.docker.io") is None  # identity tokens are not used
    assert creds.lookup("b.io") is None
    assert asked == [("pass", "a.io"), ("hub", "https://index.docker.io/v1/")]

    cfg.write_text(json.dumps({"auths": {"c.io": {}}, "credsStore": "desktop"}))
    store = Credentials(cfg, lambda helper, server: json.dumps({"Username": helper, "Secret": server}))
    assert store.lookup("c.io") == Login("desktop", "c.io")

    def failing(helper: str, server: str) -> str | None:
        return "not json"

    with pytest.raises(CredentialsError, match="sent no JSON"):
        Credentials(cfg, failing).lookup("c.io")
