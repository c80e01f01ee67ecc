"""A container runs from an image pulled from a real registry, on overlayfs (needs root).

The image's upper layer deletes a file (whiteout) and replaces a directory (opaque dir) of its
base; the container must see the merged view overlay builds from the lower dirs the store made,
run the image's entrypoint + cmd with its env, working dir and user, and own what the layer owned.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.runtime.images.store import Image
from orchestrator.runtime.process.runtime import ForkServerRuntime
from orchestrator.runtime.process.spec import ContainerSpec, OverlayRootfs, ProcessSpec, User
from tests.integration.images.conftest import Images
from tests.integration.images.support import (
    Entry,
    ImageSpec,
    Registry,
    make_layer,
    skopeo_push,
    tar_of_entries,
    write_layout,
)
from tests.integration.images.test_registry_pull import make_store, pull

pytestmark = pytest.mark.kernel


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[ForkServerRuntime]:
    rt = ForkServerRuntime(tmp_path / "state", tmp_path / "cache")
    try:
        yield rt
    finally:
        rt.close()


def run_image(
    runtime: ForkServerRuntime, tmp_path: Path, image: Image, name: str, args: tuple[str, ...] | None = None
) -> tuple[int, str]:
    cfg = image.config
    upper, work = tmp_path / name / "upper", tmp_path / name / "work"
    upper.mkdir(parents=True)
    work.mkdir()
    command = args or (*(cfg.entrypoint or ()), *(cfg.cmd or ()))
    env = tuple((k, v) for k, v in cfg.env_dict().items())
    spec = ContainerSpec(
        id=name,
        rootfs=OverlayRootfs(tuple(str(d) for d in image.lower_dirs), str(upper), str(work)),
        process=ProcessSpec(args=command, env=env, cwd=cfg.working_dir or "/", user=User(cfg.user or "0")),
        log_path=str(tmp_path / f"{name}.log"),
        hostname=name,
    )
    runtime.create(spec)
    try:
        runtime.start(name)
        status = runtime.wait(name, timeout=20)
        assert status is not None
        return status.code, (tmp_path / f"{name}.log").read_text()
    finally:
        runtime.delete(name, force=True)


def test_container_runs_from_a_pulled_image_with_whiteouts(
    tmp_path: Path,
    runtime: ForkServerRuntime,
    plain_registry: Registry,
    test_images: tuple[Path, Images],
    unique_name: str,
) -> None:
    _, images = test_images
    base_extra = make_layer(
        tar_of_entries(
            [
                Entry("etc/motd", data=b"base motd\n"),
                Entry("var/cache/", tarfile.DIRTYPE, mode=0o755),
                Entry("var/cache/old-a", data=b"a"),
                Entry("var/cache/old-b", data=b"b"),
            ]
        )
    )
    top = make_layer(
        tar_of_entries(
            [
                Entry("etc/.wh.motd"),
                Entry("var/cache/", tarfile.DIRTYPE, mode=0o755),
                Entry("var/cache/.wh..wh..opq"),
                Entry("var/cache/new", data=b"n"),
                Entry("home/tester/", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000),
                Entry("home/tester/owned", data=b"mine\n", mode=0o600, uid=1000, gid=1000),
            ]
        ),
        "zstd",
    )
    script = (
        "ls /var/cache; test -e /etc/motd && echo motd-present || echo motd-gone; "
        "id -u; pwd; echo $GREETING; cat /home/tester/owned"
    )
    config = {
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": [script],
        "Env": ["PATH=/bin", "GREETING=from-image-env"],
        "WorkingDir": "/home/tester",
        "User": "1000:1000",
    }
    layout = tmp_path / "layout"
    write_layout(layout, [ImageSpec([images.base, base_extra, top], config=config)], "v1")
    skopeo_push(layout, "v1", plain_registry, "test/whiteout")

    store = make_store(tmp_path)
    image = pull(store, f"{plain_registry.host}/test/whiteout:v1")
    assert len(image.lower_dirs) == 3

    code, output = run_image(runtime, tmp_path, image, unique_name)
    assert code == 0, output
    assert output.split() == ["new", "motd-gone", "1000", "/home/tester", "from-image-env", "mine"]
    # the layers themselves were not changed by running the container
    assert (image.lower_dirs[1] / "etc" / "motd").read_text() == "base motd\n"
