"""Fixtures for the registry tests: real ``docker-registry`` instances with images pushed by skopeo.

The tools (docker-registry, skopeo, openssl) are required: without them the tests skip, and under
``ORC_REQUIRE_KERNEL=1`` (CI) they fail instead. Registries, the token service and proxies are
session-scoped (built once per run) and stopped in fixture teardown whatever the outcome; their files live in pytest's
temporary directories.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.images.support import (
    CuttingProxy,
    Entry,
    ImageSpec,
    Layer,
    Pki,
    Registry,
    TokenService,
    make_layer,
    random_layer,
    skopeo_push,
    tar_of_dir,
    tar_of_entries,
    write_layout,
)
from tests.support.rootfs import build_busybox_rootfs, busybox_problem

TOOLS = ("docker-registry", "skopeo", "openssl")


def tools_problem() -> str | None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install docker-registry skopeo openssl)"
    return busybox_problem()


@pytest.fixture(scope="session")
def registry_tools() -> None:
    problem = tools_problem()
    if problem:
        if os.environ.get("ORC_REQUIRE_KERNEL") == "1":
            pytest.fail(f"registry tests cannot run: {problem}")
        pytest.skip(problem)


@dataclass
class Images:
    """The test images as pushed: layers by role, and the expected digests."""

    base: Layer
    app: Layer
    arm: Layer
    busybox_digest: str
    app_digest: str
    multi_digest: str


@pytest.fixture(scope="session")
def test_images(registry_tools: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Images]:
    """OCI layouts on disk: busybox (gzip), app (busybox + zstd layer), multi (amd64 + arm64 index)."""
    work = tmp_path_factory.mktemp("layouts")
    rootfs = build_busybox_rootfs(work / "rootfs")
    base = make_layer(tar_of_dir(rootfs), "gzip")
    app = make_layer(
        tar_of_entries(
            [
                Entry("app/", tarfile.DIRTYPE, mode=0o755),
                Entry("app/hello.txt", data=b"hello from zstd\n", uid=1000, gid=1000),
                Entry("app/run.sh", data=b"#!/bin/sh\necho hi\n", mode=0o4755),
            ]
        ),
        "zstd",
    )
    arm = make_layer(tar_of_entries([Entry("arch.txt", data=b"arm64\n")]), "gzip")
    amd = make_layer(tar_of_entries([Entry("arch.txt", data=b"amd64\n")]), "gzip")
    config = {
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo hi"],
        "Env": ["PATH=/usr/bin:/bin", "GREETING=hello"],
        "WorkingDir": "/app",
        "User": "1000:1000",
        "ExposedPorts": {"8080/tcp": {}},
        "Volumes": {"/data": {}},
        "StopSignal": "SIGINT",
        "Labels": {"org.example": "yes"},
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000, "Retries": 3},
    }
    busybox_digest = write_layout(work / "busybox", [ImageSpec([base])], "v1")
    app_digest = write_layout(work / "app", [ImageSpec([base, app], config=config)], "v1")
    multi_digest = write_layout(
        work / "multi",
        [ImageSpec([base, amd]), ImageSpec([base, arm], architecture="arm64", variant="v8")],
        "v1",
    )
    return work, Images(base, app, arm, busybox_digest, app_digest, multi_digest)


@pytest.fixture(scope="session")
def plain_registry(
    test_images: tuple[Path, Images], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    """A plain-HTTP registry on 127.0.0.1 holding test/busybox:v1, test/app:v1 and test/multi:v1
    (OCI), and test/multi-docker:v1 (the same as a Docker manifest list of schema-2 manifests)."""
    layouts, _ = test_images
    registry = Registry(tmp_path_factory.mktemp("plain-registry"))
    try:
        for name in ("busybox", "app", "multi"):
            skopeo_push(layouts / name, "v1", registry, f"test/{name}")
        skopeo_push(layouts / "multi", "v1", registry, "test/multi-docker", docker_format=True)
        yield registry
    finally:
        registry.close()


@dataclass
class SecureRegistry:
    registry: Registry
    tokens: TokenService | None
    pki: Pki


@pytest.fixture(scope="session")
def secure_registry(
    test_images: tuple[Path, Images], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureRegistry]:
    """A TLS registry (test CA) with token auth from :class:`TokenService`; holds test/busybox:v1."""
    layouts, _ = test_images
    work = tmp_path_factory.mktemp("secure-registry")
    pki = Pki(work / "pki").create()
    tokens = TokenService(pki)
    registry: Registry | None = None
    try:
        registry = Registry(work / "registry", pki=pki, tokens=tokens)
        skopeo_push(
            layouts / "busybox", "v1", registry, "test/busybox", creds=f"{tokens.USER}:{tokens.PASSWORD}"
        )
        yield SecureRegistry(registry, tokens, pki)
    finally:
        if registry is not None:
            registry.close()
        tokens.close()


@pytest.fixture(scope="session")
def basic_registry(
    test_images: tuple[Path, Images], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureRegistry]:
    """A TLS registry with htpasswd (Basic) auth for tester/secret; holds test/busybox:v1."""
    layouts, _ = test_images
    work = tmp_path_factory.mktemp("basic-registry")
    pki = Pki(work / "pki").create()
    registry = Registry(work / "registry", pki=pki, basic_auth=("tester", "secret"))
    try:
        skopeo_push(layouts / "busybox", "v1", registry, "test/busybox", creds="tester:secret")
        yield SecureRegistry(registry, None, pki)
    finally:
        registry.close()


@pytest.fixture
def proxy(plain_registry: Registry) -> Iterator[CuttingProxy]:
    p = CuttingProxy(plain_registry.port)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def scratch_registry(registry_tools: None, tmp_path: Path) -> Iterator[Registry]:
    """A fresh plain registry for tests that damage its storage."""
    registry = Registry(tmp_path / "scratch-registry")
    try:
        yield registry
    finally:
        registry.close()


__all__ = ["Images", "SecureRegistry", "random_layer"]
