"""Reference parsing and normalisation (Docker's rules), archive transports and platforms."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.runtime.images.reference import (
    ArchiveSource,
    InvalidReference,
    Platform,
    Reference,
    host_platform,
    parse_image_source,
    parse_reference,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "full", "familiar"),
    [
        ("redis", "docker.io/library/redis:latest", "redis:latest"),
        ("redis:7", "docker.io/library/redis:7", "redis:7"),
        ("bitnami/redis", "docker.io/bitnami/redis:latest", "bitnami/redis:latest"),
        ("docker.io/redis", "docker.io/library/redis:latest", "redis:latest"),
        ("index.docker.io/library/redis:1", "docker.io/library/redis:1", "redis:1"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        ("localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000/app:v1"),
        ("127.0.0.1:5000/a/b/c:v1", "127.0.0.1:5000/a/b/c:v1", "127.0.0.1:5000/a/b/c:v1"),
        ("ghcr.io/o/r", "ghcr.io/o/r:latest", "ghcr.io/o/r:latest"),
        (f"redis@{DIGEST}", f"docker.io/library/redis@{DIGEST}", f"redis@{DIGEST}"),
        (
            f"host:5000/ns/name:tag@{DIGEST}",
            f"host:5000/ns/name:tag@{DIGEST}",
            f"host:5000/ns/name:tag@{DIGEST}",
        ),
        ("my_app.v2-x__y", "docker.io/library/my_app.v2-x__y:latest", "my_app.v2-x__y:latest"),
        ("docker://redis:6", "docker.io/library/redis:6", "redis:6"),
    ],
)
def test_normalisation(text: str, full: str, familiar: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == full
    assert ref.familiar() == familiar


def test_parts_and_registry_host() -> None:
    ref = parse_reference(f"host:5000/ns/name:tag@{DIGEST}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("host:5000", "ns/name", "tag", DIGEST)
    assert ref.object == DIGEST
    assert parse_reference("redis").registry_host == "registry-1.docker.io"
    assert parse_reference("redis").object == "latest"
    assert str(parse_reference("redis:7").with_digest(DIGEST)) == f"docker.io/library/redis:7@{DIGEST}"
    assert parse_reference(f"redis@{DIGEST}").without_digest() == Reference(
        "docker.io", "library/redis", "latest"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Redis", "lowercase"),
        ("docker.io/Library/redis", "lowercase"),
        ("redis:bad tag", "invalid tag"),
        ("redis:" + "t" * 129, "invalid tag"),
        ("redis@sha256:1234", "invalid digest"),
        ("redis@sha256:" + "AB" * 32, "invalid"),
        ("redis@md5:" + "ab" * 16, "unsupported digest algorithm"),
        ("a//b", "bad repository name"),
        ("-leading", "bad repository name"),
        ("host:port:x/y", "invalid"),
    ],
)
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=message):
        parse_reference(text)


def test_archive_transports(tmp_path: Path) -> None:
    assert parse_image_source("oci:/srv/layout:v1") == ArchiveSource("oci", "/srv/layout", "v1")
    assert parse_image_source("oci:./layout", tmp_path) == ArchiveSource(
        "oci", str(tmp_path / "layout"), None
    )
    assert parse_image_source("oci-archive:../x.tar:t", tmp_path / "p") == ArchiveSource(
        "oci-archive", str(tmp_path / "x.tar"), "t"
    )
    assert parse_image_source("docker-archive:/x.tar:busybox") == ArchiveSource(
        "docker-archive", "/x.tar", "docker.io/library/busybox:latest"
    )
    assert str(ArchiveSource("oci", "/srv/layout", "v1")) == "oci:/srv/layout:v1"
    # without a path it is an image called "oci"
    assert parse_image_source("oci:latest") == parse_reference("oci:latest")


def test_platforms() -> None:
    assert Platform.parse("linux/amd64") == Platform("linux", "amd64")
    assert Platform.parse("linux/arm64/v8") == Platform("linux", "arm64")
    assert Platform.parse("linux/arm/7") == Platform("linux", "arm", "v7")
    assert Platform.parse("linux/x86_64") == Platform("linux", "amd64")
    assert str(Platform.parse("linux/arm/v6")) == "linux/arm/v6"
    with pytest.raises(InvalidReference):
        Platform.parse("linux")
    wanted = Platform("linux", "arm64")
    assert wanted.matches("linux", "arm64", "v8") and wanted.matches("linux", "arm64", None)
    assert not wanted.matches("linux", "amd64", None) and not wanted.matches("windows", "arm64", None)
    assert Platform("linux", "arm", "v7").matches("linux", "arm", "v7")
    assert not Platform("linux", "arm", "v7").matches("linux", "arm", "v6")
    assert host_platform("x86_64") == Platform("linux", "amd64")
    assert host_platform("aarch64") == Platform("linux", "arm64")
    assert host_platform("armv7l") == Platform("linux", "arm", "v7")
