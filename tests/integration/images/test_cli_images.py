"""The image verbs as a user runs them, against the real plain-HTTP test registry.

``orc pull REF`` (JSON-lines progress), ``orc images``, ``image inspect|rm|prune|load``, and with a
compose file: ``orc pull`` of the services' images, ``orc lock`` and ``orc lock --check``.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from orchestrator.cli.app import main
from tests.integration.images.conftest import Images
from tests.integration.images.support import ImageSpec, Registry, image_blobs


class Orc:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys

    def __call__(self, *args: str, code: int = 0) -> tuple[str, str]:
        self.capsys.readouterr()
        try:
            main(["--root", str(self.root), *args])
        except SystemExit as exit_:
            got = exit_.code or 0
        else:
            got = 0
        out, err = self.capsys.readouterr()
        assert got == code, f"exit {got}, stdout: {out}\nstderr: {err}"
        return out, err


@pytest.fixture
def orc(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Orc:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.chdir(tmp_path)
    return Orc(tmp_path / "root", capsys)


def test_pull_list_inspect_remove(
    orc: Orc, plain_registry: Registry, test_images: tuple[Path, Images]
) -> None:
    _, images = test_images
    ref = f"{plain_registry.host}/test/app:v1"
    out, _ = orc("pull", "--progress", "json", ref)
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "resolved" and events[-1]["event"] == "pulled"
    assert {e["layer"] for e in events if e["event"] == "done"} == {images.base.digest, images.app.digest}

    orc("pull", "--quiet", f"{plain_registry.host}/test/busybox:v1")
    out, _ = orc("images", "--format", "json")
    rows = {r["Repository"]: r for r in json.loads(out)}
    assert set(rows) == {f"{plain_registry.host}/test/app", f"{plain_registry.host}/test/busybox"}
    assert rows[f"{plain_registry.host}/test/app"]["Tag"] == "v1"
    assert rows[f"{plain_registry.host}/test/app"]["Digest"] == images.app_digest
    table, _ = orc("images")
    assert table.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "PLATFORM", "SIZE"]

    out, _ = orc("image", "inspect", ref)
    [doc] = json.loads(out)
    assert doc["config"]["working_dir"] == "/app" and len(doc["lower_dirs"]) == 2

    out, _ = orc("image", "rm", ref)
    assert out.splitlines()[0] == f"Untagged: {ref}" and out.splitlines()[1].startswith("Deleted: sha256:")
    _, err = orc("image", "rm", ref, code=1)
    assert f"error: no such image: {ref}" in err
    out, _ = orc("image", "prune", "--all", "--force")
    assert "Total reclaimed space" in out
    out, _ = orc("images", "--format", "json")
    assert json.loads(out) == []
    assert sorted(p.name for p in (orc.root / "lib" / "images" / "l").iterdir()) == []


def test_pull_errors_are_one_line(orc: Orc, plain_registry: Registry) -> None:
    _, err = orc("pull", "--quiet", f"{plain_registry.host}/test/nothing:v1", code=1)
    assert (
        err.strip()
        == f"error: manifest for {plain_registry.host}/test/nothing:v1 not found in registry {plain_registry.host}"
    )
    _, err = orc("pull", "Bad/Name", code=1)
    assert "repository name must be lowercase" in err


def test_image_load_docker_archive(orc: Orc, tmp_path: Path, test_images: tuple[Path, Images]) -> None:
    _, images = test_images
    _, config, _ = image_blobs(ImageSpec([images.base]))
    src = tmp_path / "save"
    (src / "layer").mkdir(parents=True)
    (src / "layer" / "layer.tar").write_bytes(images.base.tar)
    (src / "config.json").write_bytes(config)
    (src / "manifest.json").write_text(
        json.dumps([{"Config": "config.json", "RepoTags": ["mybox:1"], "Layers": ["layer/layer.tar"]}])
    )
    with tarfile.open(tmp_path / "save.tar", "w") as tar:
        for name in ("manifest.json", "config.json", "layer/layer.tar"):
            tar.add(src / name, arcname=name)
    out, _ = orc("image", "load", "-i", str(tmp_path / "save.tar"))
    assert out.splitlines()[0] == "Loaded image: docker.io/library/mybox:1"  # no name after the file
    out, _ = orc("images", "--format", "json")
    assert {(r["Repository"], r["Tag"]) for r in json.loads(out)} >= {("docker.io/library/mybox", "1")}
    (tmp_path / "junk.tar").write_bytes(b"junk" * 300)
    _, err = orc("image", "load", "-i", str(tmp_path / "junk.tar"), code=1)
    assert "is not an image archive" in err
    _, err = orc("image", "load", "-i", str(tmp_path / "missing.tar"), code=1)
    assert "no such file" in err


def test_project_pull_and_lock(
    orc: Orc, tmp_path: Path, plain_registry: Registry, test_images: tuple[Path, Images]
) -> None:
    _, images = test_images
    host = plain_registry.host
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        f"""
services:
  web:
    image: {host}/test/app:v1
  arm:
    image: {host}/test/multi:v1
    platform: linux/arm64
  built:
    build: .
"""
    )
    orc("pull", "--quiet")
    out, _ = orc("images", "--format", "json")
    repos = {r["Repository"]: r for r in json.loads(out)}
    assert repos[f"{host}/test/multi"]["Platform"] == "linux/arm64/v8"

    out, _ = orc("lock")
    assert "compose.lock" in out
    lock = json.loads((tmp_path / "compose.lock").read_text())
    assert lock["services"]["web"]["digest"] == images.app_digest
    assert lock["services"]["arm"]["digest"] == images.multi_digest
    assert list(lock["services"]["arm"]["platforms"]) == ["linux/arm64"]
    assert "built" not in lock["services"]
    orc("lock", "--check")

    compose.write_text(compose.read_text().replace("test/app:v1", "test/busybox:v1"))
    _, err = orc("lock", "--check", code=15)
    assert "services.web.image: the compose file says image" in err
