"""``--resolve-image-digests`` values match Docker Compose's, for a plain image and an index.

Docker Compose asks the Docker daemon, so this needs a running daemon (skipped without one; it is
not an ``oracle``-marked test because CI machines need not run dockerd). The daemon treats
127.0.0.0/8 registries as insecure by default, so it reaches the test registry directly.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import anyio
import pytest
import yaml

from orchestrator.runtime.images.driver import LocalImages
from orchestrator.runtime.images.lock import resolve_image_digests
from orchestrator.runtime.images.registry import RegistryOptions
from orchestrator.runtime.images.store import ImageStore
from tests.integration.images.support import Registry


def docker_problem() -> str | None:
    if shutil.which("docker-compose") is None or shutil.which("docker") is None:
        return "docker-compose or docker not installed"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no running Docker daemon"
    return None


def test_resolved_digests_match_docker_compose(tmp_path: Path, plain_registry: Registry) -> None:
    problem = docker_problem()
    if problem:
        pytest.skip(problem)
    images = {
        "plain": f"{plain_registry.host}/test/busybox:v1",
        "index": f"{plain_registry.host}/test/multi:v1",
        "built": None,
    }
    compose = tmp_path / "compose.yaml"
    lines = ["services:"]
    for name, image in images.items():
        lines += [f"  {name}:", f"    image: {image}"] if image else [f"  {name}:", "    build: ."]
    compose.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["docker-compose", "-f", str(compose), "config", "--resolve-image-digests"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    theirs = {name: svc["image"] for name, svc in yaml.safe_load(out)["services"].items() if "image" in svc}

    async def ours() -> dict[str, str]:
        async with LocalImages(ImageStore(tmp_path / "images"), registry_options=RegistryOptions()) as driver:
            return await resolve_image_digests(driver, images)

    assert anyio.run(ours) == theirs
