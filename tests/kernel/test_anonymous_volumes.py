"""Anonymous volumes across a recreate, through the CLI on the real kernel: as Docker Compose
does, a container recreated because its configuration changed gets its predecessor's anonymous
volumes (by path), ``up -V`` gives it new ones, and ``down`` leaves nothing of them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.orc_cli import Orc, busybox_stack, orc_project

pytestmark = pytest.mark.kernel

SERVICE = """  keeper:
    <<: *busybox
    environment: {{ROUND: "{round}"}}
    volumes: ["/data"]
    command: ["sh", "-c", "[ -f /data/first ] || echo \\"$$ROUND\\" > /data/first; trap 'exit 0' TERM; sleep 100000 & wait"]
"""


@pytest.fixture
def orc(tmp_path: Path, busybox_rootfs: Path, unique_name: str) -> Iterator[Orc]:
    with orc_project(tmp_path, unique_name) as project:
        yield project


def write(orc: Orc, rootfs: Path, round_: str) -> None:
    (orc.project_dir / "compose.yaml").write_text(
        busybox_stack(orc.project, rootfs) + SERVICE.format(round=round_)
    )


def first_round(orc: Orc) -> str:
    return orc("exec", "-T", "keeper", "cat", "/data/first").stdout.strip()


def test_a_recreated_container_keeps_its_anonymous_volume_unless_renewed(
    orc: Orc, busybox_rootfs: Path
) -> None:
    write(orc, busybox_rootfs, "one")
    orc("up", "-d")
    assert first_round(orc) == "one"
    write(orc, busybox_rootfs, "two")  # the environment changed: keeper is recreated
    up = orc("--progress", "plain", "up", "-d")
    assert "Recreated" in up.stderr or "Created" in up.stderr, up.stderr
    assert first_round(orc) == "one"  # the data written by its predecessor
    write(orc, busybox_rootfs, "three")
    orc("up", "-d", "-V")
    assert first_round(orc) == "three"  # a new anonymous volume
    orc("down")
    containers = orc.root / "lib" / "containers"
    assert not containers.exists() or list(containers.iterdir()) == []


IMAGE_SERVICE = """name: {project}
services:
  app:
    image: orc.local/busybox-volume:latest
    environment: {{ROUND: "{round}"}}
    command: ["sh", "-c", "[ -f /var/lib/app/first ] || echo \\"$$ROUND\\" > /var/lib/app/first; trap 'exit 0' TERM; sleep 100000 & wait"]
"""


def test_an_image_volume_is_an_anonymous_volume_that_survives_a_recreate(
    tmp_path: Path, unique_name: str
) -> None:
    """An image's ``VOLUME`` gets an anonymous volume, as Docker gives it: what the container
    writes there is not in its overlay upper dir, and a recreate keeps it."""
    archive = tmp_path / "busybox-volume.tar"
    packer = Path(__file__).resolve().parents[2] / "scripts" / "pack-rootfs-image.py"
    subprocess.run(
        [
            sys.executable,
            str(packer),
            "--busybox",
            "--name",
            "orc.local/busybox-volume:latest",
            "--volume",
            "/var/lib/app",
            "-o",
            str(archive),
        ],
        check=True,
        capture_output=True,
    )
    with orc_project(tmp_path, unique_name) as orc:
        orc("image", "load", "-i", str(archive))
        compose = orc.project_dir / "compose.yaml"
        compose.write_text(IMAGE_SERVICE.format(project=unique_name, round="one"))
        orc("up", "-d")
        read = ("exec", "-T", "app", "cat", "/var/lib/app/first")
        assert orc(*read).stdout.strip() == "one"
        upper = orc.root / "lib" / "containers" / f"{unique_name}-app-1" / "upper"
        assert not (upper / "var" / "lib" / "app" / "first").exists()  # on the volume, not the rootfs
        compose.write_text(IMAGE_SERVICE.format(project=unique_name, round="two"))
        orc("up", "-d")
        assert orc(*read).stdout.strip() == "one"
