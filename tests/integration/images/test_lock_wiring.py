"""``orc config --resolve-image-digests`` and ``orc up --locked`` against real loopback registries.

* ``config --resolve-image-digests`` prints each image pinned to the digest the registry serves
  (YAML and JSON), already-pinned images normalised; with a Docker daemon the whole document is
  compared with ``docker-compose config --resolve-image-digests``.
* ``up --locked`` (kernel): after ``orc lock`` the tag moves to another image; ``up --locked`` runs
  the locked digest and never pulls the tag; a changed file, a service missing from the lock and a
  missing lock file fail naming the lock file, the service and both images, before anything is
  created on the machine.
* ``up`` takes registry settings from the CLI's environment (``DOCKER_CONFIG`` credentials and
  ``ORC_CERTS_DIR`` CAs for a TLS registry with Basic auth), relative ``oci:`` paths from the
  project directory and each service's ``platform:`` (kernel).
* The supervisor threads ``locked_images`` and ``image_options`` to the runtime (recording fake).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.daemon.client import SupervisorError, call
from orchestrator.reconciler.clock import SystemClock
from orchestrator.reconciler.fake import FakeRuntime
from orchestrator.reconciler.ports import ImageOptions
from orchestrator.runtime.images.lock import LockedImage, LockFile, render_lock
from orchestrator.runtime.images.store import ImageStore
from orchestrator.state.store import FileStateStore
from tests.integration.images.conftest import Images, SecureRegistry
from tests.integration.images.support import Registry, skopeo_push, wait_for
from tests.integration.images.test_resolve_digests_oracle import docker_problem
from tests.support import orc_cli
from tests.support.supervised import serve_supervisor

REGISTRY_SETTINGS = ("DOCKER_CONFIG", "ORC_CERTS_DIR", "ORC_INSECURE_REGISTRIES")


class Orc(orc_cli.Orc):
    """The shared CLI runner without the caller's registry settings unless a test passes them."""

    def __init__(self, root: Path, project_dir: Path, prefix: str, env: dict[str, str] | None = None) -> None:
        super().__init__(root, project_dir, prefix, env, unset=REGISTRY_SETTINGS)


@pytest.fixture
def project(tmp_path: Path, unique_name: str) -> Iterator[tuple[Orc, str]]:
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    orc = Orc(tmp_path / "root", project_dir, unique_name)
    try:
        yield orc, unique_name
    finally:
        orc_cli.clean_up(orc)


SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]


def write_compose(directory: Path, name: str, services: dict[str, dict[str, Any]]) -> Path:
    path = directory / "compose.yaml"
    path.write_text(yaml.safe_dump({"name": name, "services": services}, sort_keys=True))
    return path


# --- config --resolve-image-digests -------------------------------------------------------------


def test_config_resolve_image_digests_yaml_and_json(
    tmp_path: Path, plain_registry: Registry, test_images: tuple[Path, Images]
) -> None:
    _, images = test_images
    host = plain_registry.host
    pinned = "sha256:" + "a" * 64
    write_compose(
        tmp_path,
        "resolve",
        {
            "plain": {"image": f"{host}/test/busybox:v1"},
            "index": {"image": f"{host}/test/multi:v1"},
            "pinned": {"image": f"redis:7@{pinned}"},
            "built": {"build": "."},
        },
    )
    orc = Orc(tmp_path / "root", tmp_path, "orctcfg")
    want = {
        "plain": f"{host}/test/busybox:v1@{images.busybox_digest}",
        "index": f"{host}/test/multi:v1@{images.multi_digest}",
        # as Docker Compose (reference.ParseDockerRef): a tagged and digested image loses its tag
        "pinned": f"docker.io/library/redis@{pinned}",
    }
    as_yaml = yaml.safe_load(orc("config", "--resolve-image-digests").stdout)
    as_json = json.loads(orc("config", "--resolve-image-digests", "--format", "json").stdout)
    for document in (as_yaml, as_json):
        assert {n: s["image"] for n, s in document["services"].items() if "image" in s} == want
        assert "image" not in document["services"]["built"]
    # without the flag the images stay as written
    plain = yaml.safe_load(orc("config").stdout)
    assert plain["services"]["plain"]["image"] == f"{host}/test/busybox:v1"


def test_config_resolve_image_digests_matches_docker_compose(
    tmp_path: Path, plain_registry: Registry
) -> None:
    problem = docker_problem()
    if problem:
        pytest.skip(problem)
    host = plain_registry.host
    write_compose(
        tmp_path,
        "resolveoracle",
        {
            "plain": {"image": f"{host}/test/busybox:v1", "command": ["true"]},
            "index": {"image": f"{host}/test/multi-docker:v1"},
            "pinned": {"image": f"busybox:1@sha256:{'b' * 64}"},
        },
    )
    orc = Orc(tmp_path / "root", tmp_path, "orctcfg")
    for extra in ((), ("--format", "json"), ("--no-interpolate",)):
        theirs = subprocess.run(
            ["docker-compose", "config", "--resolve-image-digests", *extra],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        assert orc("config", "--resolve-image-digests", *extra).stdout == theirs


def test_config_resolve_fails_for_a_missing_tag(tmp_path: Path, plain_registry: Registry) -> None:
    write_compose(tmp_path, "resolvemissing", {"web": {"image": f"{plain_registry.host}/test/nothing:v1"}})
    result = Orc(tmp_path / "root", tmp_path, "orctcfg")("config", "--resolve-image-digests", check=False)
    assert result.returncode != 0
    assert "test/nothing" in result.stderr and "not found" in result.stderr


# --- up --locked: refusals (no kernel needed: nothing may start) --------------------------------


def _nothing_created(orc: Orc, project: str) -> None:
    assert not (orc.root / "run" / project).exists()
    assert FileStateStore(orc.root / "run").list_containers(project) == []
    images = orc.root / "lib" / "images"
    assert not images.exists() or ImageStore(images).refs() == []


def test_up_locked_refuses_a_stale_or_missing_lock_before_anything_starts(tmp_path: Path) -> None:
    project = "orctlockrefuse"
    compose = write_compose(
        tmp_path,
        project,
        {"web": {"image": "127.0.0.1:1/test/app:v2"}, "db": {"image": "127.0.0.1:1/test/db:v1"}},
    )
    orc = Orc(tmp_path / "root", tmp_path, project)
    lock = compose.parent / "compose.lock"
    try:
        missing = orc("up", "-d", "--locked", check=False)
        assert missing.returncode == 15
        assert f"{lock}: no lock file; run `orc lock` first" in missing.stderr
        _nothing_created(orc, project)

        digest = "sha256:" + "c" * 64
        lock.write_text(
            render_lock(
                LockFile(
                    {"web": LockedImage("127.0.0.1:1/test/app:v1", "127.0.0.1:1/test/app:v1", digest, {})}
                )
            )
        )
        stale = orc("up", "-d", "--locked", check=False)
        assert stale.returncode == 15
        assert (
            f"{lock} services.web.image: the compose file says image '127.0.0.1:1/test/app:v2' "
            "but the lock pins '127.0.0.1:1/test/app:v1'"
        ) in stale.stderr
        assert f"{lock} services.db: service has image '127.0.0.1:1/test/db:v1' but is not in the lock" in (
            stale.stderr
        )
        _nothing_created(orc, project)

        # the dry run checks the lock the same way and shows the pinned pull
        assert orc("up", "--dry-run", "--locked", check=False).returncode == 15
        write_compose(tmp_path, project, {"web": {"image": "127.0.0.1:1/test/app:v1"}})
        plan = orc("up", "--dry-run", "--locked").stdout
        assert f"pull 127.0.0.1:1/test/app:v1@{digest}" in plan
        _nothing_created(orc, project)
    finally:
        orc_cli.clean_up(orc)


# --- the supervisor threads the pins and the image options (recording fake) ---------------------

PINNED = "busybox:1@sha256:" + "d" * 64


def _supervise(tmp_path: Path, script: Any) -> FakeRuntime:
    write_compose(
        tmp_path,
        "demo",
        {
            "web": {"image": "busybox:1", "command": ["sleep", "1000"]},
            "tool": {"image": "busybox:1", "x-orc": {"rootfs": "."}, "command": ["sleep", "1000"]},
        },
    )
    runtime = FakeRuntime(SystemClock(), images={"busybox:1": "sha256:tag"}, registry={PINNED: "sha256:pin"})
    runtime.images[f"rootfs:{tmp_path}"] = f"rootfs:{tmp_path}"

    serve_supervisor(tmp_path, runtime, script)
    return runtime


def test_supervisor_runs_the_pins_with_the_image_options(tmp_path: Path) -> None:
    load = {"cwd": str(tmp_path), "environ": {}, "files": [], "profiles": [], "env_files": []}
    options = ImageOptions({"DOCKER_CONFIG": "/x/.docker"}, "/home/x", str(tmp_path))

    def script(path: Path) -> None:
        with pytest.raises(SupervisorError, match="does not have: ghost"):
            call(path, "up", load=load, options={"locked_images": {"ghost": PINNED}})
        result = call(
            path,
            "up",
            load=load,
            options={"locked_images": {"web": PINNED, "tool": PINNED}, "image_options": options.to_json()},
        )
        assert result["failed"] == {}, result

    runtime = _supervise(tmp_path, script)
    # the tag is present locally, yet only the pinned reference is looked up and pulled
    assert [c for c in runtime.calls if c.startswith("pull")] == [f"pull {PINNED}"]
    record = FileStateStore(tmp_path / "run").load_container("demo", "demo-web-1")
    assert record is not None and record.image == PINNED and record.image_digest == "sha256:pin"
    tool = FileStateStore(tmp_path / "run").load_container("demo", "demo-tool-1")
    assert tool is not None and tool.image == f"rootfs:{tmp_path}"
    assert runtime.image_options == options


# --- up --locked and the registry settings on the real kernel -----------------------------------


@pytest.mark.kernel
def test_up_locked_runs_the_locked_digest_after_the_tag_moved(
    project: tuple[Orc, str], scratch_registry: Registry, test_images: tuple[Path, Images]
) -> None:
    orc, name = project
    layouts, images = test_images
    image = f"{scratch_registry.host}/test/app:v1"
    skopeo_push(layouts / "busybox", "v1", scratch_registry, "test/app")
    write_compose(orc.project_dir, name, {"web": {"image": image, "entrypoint": SLEEPER}})
    orc("lock")
    lock = json.loads((orc.project_dir / "compose.lock").read_text())
    assert lock["services"]["web"]["digest"] == images.busybox_digest
    # the tag now names another image (it has /app/hello.txt)
    skopeo_push(layouts / "app", "v1", scratch_registry, "test/app")

    # a changed file fails, naming the lock, the service and both images; nothing is created
    write_compose(
        orc.project_dir, name, {"web": {"image": image.replace(":v1", ":v2"), "entrypoint": SLEEPER}}
    )
    stale = orc("up", "-d", "--locked", check=False)
    assert stale.returncode == 15, stale.stderr
    assert f"{orc.project_dir / 'compose.lock'} services.web.image" in stale.stderr
    assert image in stale.stderr and image.replace(":v1", ":v2") in stale.stderr
    _nothing_created(orc, name)

    write_compose(orc.project_dir, name, {"web": {"image": image, "entrypoint": SLEEPER}})
    orc("up", "-d", "--locked")
    pinned = f"{image}@{images.busybox_digest}"
    [row] = orc.ps()
    assert (row["Service"], row["State"], row["Image"]) == ("web", "running", pinned)
    store = ImageStore(orc.root / "lib" / "images")
    assert store.ref(image) is None  # the tag itself was never pulled
    ran = store.lookup(pinned)
    assert ran is not None and ran.manifest_digest == images.busybox_digest
    record = FileStateStore(orc.root / "run").load_container(name, f"{name}-web-1")
    assert record is not None and record.image_digest == ran.id
    assert orc("exec", "-T", "web", "test", "-e", "/app/hello.txt", check=False).returncode == 1

    # a new supervisor (the old one left on SIGTERM) restarts it from the pinned image, which the
    # files it loads no longer name
    supervisor = json.loads((orc.root / "run" / name / "project.json").read_text())["supervisor_pid"]
    os.kill(supervisor, signal.SIGTERM)
    assert wait_for(lambda: not Path(f"/proc/{supervisor}").exists(), timeout=10)
    orc("restart", "-t", "1", "web")
    [row] = orc.ps()
    assert (row["State"], row["Image"]) == ("running", pinned)
    assert orc("exec", "-T", "web", "test", "-e", "/app/hello.txt", check=False).returncode == 1

    # without --locked the tag is followed: the container is recreated from the new image
    orc("up", "-d")
    [row] = orc.ps()
    assert row["Image"] == image
    assert orc("exec", "-T", "web", "cat", "/app/hello.txt").stdout == "hello from zstd\n"


@pytest.mark.kernel
def test_up_uses_the_environments_credentials_and_cas_the_project_dir_and_platform(
    project: tuple[Orc, str],
    basic_registry: SecureRegistry,
    plain_registry: Registry,
    test_images: tuple[Path, Images],
    tmp_path: Path,
) -> None:
    orc, name = project
    layouts, _ = test_images
    host = basic_registry.registry.host
    docker_config = tmp_path / "docker"
    docker_config.mkdir()
    auth = base64.b64encode(b"tester:secret").decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    certs = tmp_path / "certs.d"
    (certs / host).mkdir(parents=True)
    shutil.copy(basic_registry.pki.dir / "ca.crt", certs / host / "ca.crt")
    shutil.copytree(layouts / "busybox", orc.project_dir / "layout")
    write_compose(
        orc.project_dir,
        name,
        {
            "secure": {"image": f"{host}/test/busybox:v1", "command": SLEEPER},
            "archive": {"image": "oci:./layout:v1", "command": SLEEPER},
            "arm": {
                "image": f"{plain_registry.host}/test/multi:v1",
                "platform": "linux/arm64",
                "command": ["sh", "-c", "cat /arch.txt; trap 'exit 0' TERM; sleep 100000 & wait"],
            },
        },
    )
    configured = Orc(
        orc.root, orc.project_dir, name, {"DOCKER_CONFIG": str(docker_config), "ORC_CERTS_DIR": str(certs)}
    )
    # without them the TLS registry with Basic auth cannot be used
    refused = orc("up", "-d", check=False)
    assert refused.returncode != 0 and f"{host}/test/busybox:v1" in refused.stderr
    # `run` pulls its service's image with the settings of the shell it runs in, too
    assert orc("run", "--rm", "--no-deps", "secure", "true", check=False).returncode != 0
    assert configured("run", "--rm", "--no-deps", "secure", "echo", "pulled").stdout == "pulled\n"
    # the same supervisor takes the new settings with the next up
    configured("up", "-d")
    assert {(r["Service"], r["State"]) for r in orc.ps()} == {
        ("secure", "running"),
        ("archive", "running"),
        ("arm", "running"),
    }
    assert orc("exec", "-T", "arm", "cat", "/arch.txt").stdout == "arm64\n"
    store = ImageStore(orc.root / "lib" / "images")
    record = store.ref(f"{plain_registry.host}/test/multi:v1")
    assert record is not None and record.platform.startswith("linux/arm64")

    # another platform for the same name: the arm64 copy counts as absent and amd64 is pulled
    compose = orc.project_dir / "compose.yaml"
    compose.write_text(compose.read_text().replace("platform: linux/arm64", "platform: linux/amd64"))
    configured("up", "-d", "arm")
    assert orc("exec", "-T", "arm", "cat", "/arch.txt").stdout == "amd64\n"
