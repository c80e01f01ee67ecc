"""Pulling from real registries (distribution 2.8 via Debian's docker-registry), never a mock.

Covers: pull by tag and digest, multi-platform index, zstd layers, image config, shared base layers
downloaded once, and every failure (wrong digest, truncated blob, 401, 404, a connection cut
mid-blob, untrusted TLS) ending in a clear error with the store left consistent.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from orchestrator.errors import NotFoundError, TemporaryError
from orchestrator.runtime import launch
from orchestrator.runtime.images.auth import Credentials
from orchestrator.runtime.images.manifest import ACCEPT, DOCKER_LIST, DOCKER_MANIFEST
from orchestrator.runtime.images.pull import Puller, PullEvent
from orchestrator.runtime.images.reference import Platform, parse_reference
from orchestrator.runtime.images.registry import (
    AuthError,
    BlobError,
    RegistryClient,
    RegistryError,
    RegistryOptions,
    RegistryUnavailable,
)
from orchestrator.runtime.images.store import Image, ImageStore
from orchestrator.runtime.images.unpack import UnpackOptions
from tests.integration.images.conftest import Images, SecureRegistry
from tests.integration.images.support import (
    CuttingProxy,
    ImageSpec,
    Registry,
    random_layer,
    skopeo_push,
    write_layout,
)

PRIVILEGED = os.geteuid() == 0


class Sleeps:
    """An injected sleep that records the backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await anyio.sleep(0)


def make_store(tmp_path: Path) -> ImageStore:
    opts = UnpackOptions(
        privileged=PRIVILEGED, opaque_xattr="trusted.overlay.opaque" if PRIVILEGED else "user.overlay.opaque"
    )
    return ImageStore(tmp_path / "images", unpack_options=opts)


def pull(
    store: ImageStore,
    ref: str,
    *,
    options: RegistryOptions | None = None,
    platform: str | None = None,
    events: list[PullEvent] | None = None,
) -> Image:
    async def main() -> Image:
        async with RegistryClient(options or RegistryOptions(sleep=Sleeps(), retries=2)) as client:
            puller = Puller(store, client, platform=Platform("linux", "amd64"))
            return await puller.pull(
                parse_reference(ref),
                platform=Platform.parse(platform) if platform else None,
                on_event=events.append if events is not None else None,
            )

    return anyio.run(main)


def assert_store_consistent(store: ImageStore) -> None:
    """Nothing half-written is visible: tmp/ empty, every layer dir has a record and vice versa."""
    assert list((store.root / "tmp").iterdir()) == []
    dirs = {p.name for p in (store.root / "l").iterdir()}
    records = {json.loads(p.read_text())["dir"] for p in (store.root / "layers").glob("*.json")}
    assert dirs == records
    for image in store.images():
        assert all(d.is_dir() for d in image.lower_dirs)


def test_pull_by_tag_unpacks_layers_and_exposes_config(
    tmp_path: Path, plain_registry: Registry, test_images: tuple[Path, Images]
) -> None:
    _, images = test_images
    store = make_store(tmp_path)
    events: list[PullEvent] = []
    image = pull(store, f"{plain_registry.host}/test/app:v1", events=events)

    assert image.diff_ids == (images.base.diff_id, images.app.diff_id)
    top, base = image.lower_dirs  # uppermost first, as overlay wants them
    assert (base / "bin" / "busybox").is_file()
    assert (base / "bin" / "sh").is_symlink()
    hello = top / "app" / "hello.txt"
    assert hello.read_text() == "hello from zstd\n"  # the zstd layer
    if PRIVILEGED:
        assert (hello.stat().st_uid, hello.stat().st_gid) == (1000, 1000)
        assert (top / "app" / "run.sh").stat().st_mode & 0o7777 == 0o4755

    config = image.config
    assert config.entrypoint == ("/bin/sh", "-c")
    assert config.cmd == ("echo hi",)
    assert config.env_dict()["GREETING"] == "hello"
    assert (config.working_dir, config.user, config.stop_signal) == ("/app", "1000:1000", "SIGINT")
    assert config.exposed_ports == ("8080/tcp",)
    assert config.volumes == ("/data",)
    assert config.labels == {"org.example": "yes"}
    assert config.healthcheck is not None and config.healthcheck.retries == 3

    name = f"{plain_registry.host}/test/app:v1"
    assert image.references == (name,)
    record = store.ref(name)
    assert record is not None and record.digest == images.app_digest and record.pulled_at is not None
    kinds = [e.kind for e in events]
    assert kinds[0] == "resolved" and kinds[-1] == "pulled" and kinds.count("done") == 2
    assert_store_consistent(store)


def test_pull_by_digest_and_unknown_digest(
    tmp_path: Path, plain_registry: Registry, test_images: tuple[Path, Images]
) -> None:
    _, images = test_images
    store = make_store(tmp_path)
    ref = f"{plain_registry.host}/test/busybox@{images.busybox_digest}"
    image = pull(store, ref)
    assert image.references == (ref,)
    assert image.diff_ids == (images.base.diff_id,)

    wrong = f"{plain_registry.host}/test/busybox@sha256:{'0' * 64}"
    with pytest.raises(NotFoundError, match="not found in registry"):
        pull(store, wrong)
    assert store.ref(wrong) is None
    assert_store_consistent(store)


def test_multi_platform_index_selects_the_platform(
    tmp_path: Path, plain_registry: Registry, test_images: tuple[Path, Images]
) -> None:
    store = make_store(tmp_path)
    ref = f"{plain_registry.host}/test/multi:v1"
    amd = pull(store, ref)
    assert amd.platform == "linux/amd64"
    assert (amd.lower_dirs[0] / "arch.txt").read_text() == "amd64\n"

    arm = pull(store, ref, platform="linux/arm64")
    assert arm.platform == "linux/arm64/v8"
    assert (arm.lower_dirs[0] / "arch.txt").read_text() == "arm64\n"
    assert arm.lower_dirs[1] == amd.lower_dirs[1]  # the shared base layer is unpacked once

    with pytest.raises(
        NotFoundError, match=r"no image for platform linux/s390x .*linux/amd64, linux/arm64/v8"
    ):
        pull(store, ref, platform="linux/s390x")
    assert_store_consistent(store)


def test_docker_manifest_list_and_schema2_manifests(tmp_path: Path, plain_registry: Registry) -> None:
    import urllib.request

    ref = f"{plain_registry.host}/test/multi-docker:v1"
    request = urllib.request.Request(
        f"http://{plain_registry.host}/v2/test/multi-docker/manifests/v1", headers={"Accept": ACCEPT}
    )
    with urllib.request.urlopen(request) as resp:
        assert resp.headers["Content-Type"] == DOCKER_LIST
    store = make_store(tmp_path)
    amd = pull(store, ref)
    arm = pull(store, ref, platform="linux/arm64")
    assert (amd.lower_dirs[0] / "arch.txt").read_text() == "amd64\n"
    assert (arm.lower_dirs[0] / "arch.txt").read_text() == "arm64\n"
    manifest = json.loads(store.read_blob(amd.manifest_digest))
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert_store_consistent(store)


def test_second_image_downloads_only_its_new_layer(
    tmp_path: Path, proxy: CuttingProxy, test_images: tuple[Path, Images]
) -> None:
    _, images = test_images
    store = make_store(tmp_path)
    pull(store, f"{proxy.host}/test/busybox:v1")
    assert proxy.blob_requests.get(images.base.digest) == 1

    events: list[PullEvent] = []
    pull(store, f"{proxy.host}/test/app:v1", events=events)
    assert proxy.blob_requests.get(images.base.digest) == 1  # not downloaded again
    assert proxy.blob_requests.get(images.app.digest) == 1
    assert [e.layer for e in events if e.kind == "exists"] == [images.base.digest]
    assert store.layer_refcounts()[images.base.diff_id] == 2


def test_corrupted_blob_is_a_digest_error_and_leaves_nothing(tmp_path: Path, proxy: CuttingProxy) -> None:
    store = make_store(tmp_path)
    proxy.corrupt = True
    with pytest.raises(BlobError, match="arrived with digest"):
        pull(store, f"{proxy.host}/test/busybox:v1")
    assert store.images() == [] and store.refs() == []
    assert_store_consistent(store)


def test_truncated_blob_in_registry_storage(tmp_path: Path, scratch_registry: Registry) -> None:
    layer = random_layer(300_000, seed=7)
    layout = tmp_path / "layout"
    write_layout(layout, [ImageSpec([layer])], "v1")
    skopeo_push(layout, "v1", scratch_registry, "test/truncated")
    data_file = scratch_registry.blob_data_path(layer.digest)
    data_file.write_bytes(data_file.read_bytes()[:100_000])

    store = make_store(tmp_path)
    with pytest.raises(BlobError, match=r"truncated: got 100000 of \d+ bytes"):
        pull(store, f"{scratch_registry.host}/test/truncated:v1")
    assert store.images() == []
    assert_store_consistent(store)


def test_connection_cut_mid_blob_resumes_with_range(
    tmp_path: Path, proxy: CuttingProxy, test_images: tuple[Path, Images]
) -> None:
    _, images = test_images
    store = make_store(tmp_path)
    proxy.cut_after = 50_000
    proxy.cut_times = 1
    sleeps = Sleeps()
    image = pull(store, f"{proxy.host}/test/busybox:v1", options=RegistryOptions(sleep=sleeps, retries=3))
    assert image.diff_ids == (images.base.diff_id,)
    assert proxy.ranges == ["bytes=50000-"]
    assert sleeps.delays == [0.5]
    assert_store_consistent(store)


def test_registry_dying_mid_blob_every_time_is_a_clear_temporary_error(
    tmp_path: Path, proxy: CuttingProxy
) -> None:
    store = make_store(tmp_path)
    proxy.cut_after = 10_000
    sleeps = Sleeps()
    with pytest.raises(RegistryUnavailable, match=r"failed after 4 attempts") as info:
        pull(store, f"{proxy.host}/test/busybox:v1", options=RegistryOptions(sleep=sleeps, retries=3))
    assert isinstance(info.value, TemporaryError)
    assert sleeps.delays == [0.5, 1.0, 2.0]  # exponential backoff on the injected sleep
    assert store.images() == []
    assert_store_consistent(store)


def test_503s_are_retried_with_backoff(tmp_path: Path, proxy: CuttingProxy) -> None:
    store = make_store(tmp_path)
    proxy.unavailable_times = 2
    sleeps = Sleeps()
    pull(store, f"{proxy.host}/test/busybox:v1", options=RegistryOptions(sleep=sleeps, retries=3))
    assert sleeps.delays == [0.5, 1.0]
    assert_store_consistent(store)


def test_registry_gone_entirely(tmp_path: Path, scratch_registry: Registry) -> None:
    scratch_registry.close()
    store = make_store(tmp_path)
    with pytest.raises(RegistryUnavailable, match=r"unreachable|failed after"):
        pull(
            store,
            f"{scratch_registry.host}/test/busybox:v1",
            options=RegistryOptions(sleep=Sleeps(), retries=1),
        )
    assert_store_consistent(store)


def test_unknown_repository_and_tag_are_not_found(tmp_path: Path, plain_registry: Registry) -> None:
    store = make_store(tmp_path)
    with pytest.raises(NotFoundError, match=r"test/nothing:v1 not found"):
        pull(store, f"{plain_registry.host}/test/nothing:v1")
    with pytest.raises(NotFoundError, match=r"test/busybox:v9 not found"):
        pull(store, f"{plain_registry.host}/test/busybox:v9")


# --- TLS and token auth ------------------------------------------------------------------------


def secure_options(
    tmp_path: Path, secure: SecureRegistry, *, user: str | None, password: str = ""
) -> RegistryOptions:
    certs = tmp_path / "certs.d" / secure.registry.host
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copy(secure.pki.dir / "ca.crt", certs / "ca.crt")
    config = tmp_path / "docker-config.json"
    auths = {}
    if user is not None:
        auths[secure.registry.host] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    config.write_text(json.dumps({"auths": auths}))
    return RegistryOptions(
        credentials=Credentials(config), certs_dirs=(tmp_path / "certs.d",), sleep=Sleeps(), retries=1
    )


def test_tls_registry_with_token_auth(
    tmp_path: Path, secure_registry: SecureRegistry, test_images: tuple[Path, Images]
) -> None:
    _, images = test_images
    store = make_store(tmp_path)
    ref = f"{secure_registry.registry.host}/test/busybox:v1"
    before = len(secure_registry.tokens.requests) if secure_registry.tokens else 0
    image = pull(
        store, ref, options=secure_options(tmp_path, secure_registry, user="tester", password="secret")
    )
    assert image.diff_ids == (images.base.diff_id,)
    assert secure_registry.tokens is not None
    issued = secure_registry.tokens.requests[before:]
    # one token for the repository scope, reused for manifest, config and layer
    assert issued == [{"user": "tester", "scope": ["repository:test/busybox:pull"]}]


def test_tls_pull_in_a_process_started_without_openssl(
    tmp_path: Path,
    secure_registry: SecureRegistry,
    test_images: tuple[Path, Images],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The supervisor imports its event loop without OpenSSL (runtime.launch); a pull it runs
    loads ``ssl`` then, and TLS through httpx and anyio works as anywhere else."""
    _, images = test_images
    secure_options(tmp_path, secure_registry, user="tester", password="secret")  # its config and CA
    probe = tmp_path / "modules" / "orc_tls_pull_probe.py"
    probe.parent.mkdir()
    probe.write_text(
        "import json, sys\n"
        "from pathlib import Path\n"
        "import anyio\n"
        "import orchestrator.daemon.supervisor\n"
        "before = 'ssl' in sys.modules\n"
        "from orchestrator.runtime.images.auth import Credentials\n"
        "from orchestrator.runtime.images.pull import Puller\n"
        "from orchestrator.runtime.images.reference import Platform, parse_reference\n"
        "from orchestrator.runtime.images.registry import RegistryClient, RegistryOptions\n"
        "from orchestrator.runtime.images.store import ImageStore\n"
        "from orchestrator.runtime.images.unpack import UnpackOptions\n"
        "ref, config, certs, root = sys.argv[1:]\n"
        "options = RegistryOptions(credentials=Credentials(Path(config)), certs_dirs=(Path(certs),), retries=1)\n"
        "store = ImageStore(Path(root), unpack_options=UnpackOptions(privileged=False,\n"
        "    opaque_xattr='user.overlay.opaque'))\n"
        "async def main():\n"
        "    async with RegistryClient(options) as client:\n"
        "        puller = Puller(store, client, platform=Platform('linux', 'amd64'))\n"
        "        return await puller.pull(parse_reference(ref))\n"
        "image = anyio.run(main)\n"
        "print(json.dumps({'before': before, 'diff_ids': list(image.diff_ids)}))\n"
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path), str(probe.parent), *sys.path])
    argv = launch.module_argv(
        "orc_tls_pull_probe",
        f"{secure_registry.registry.host}/test/busybox:v1",
        str(tmp_path / "docker-config.json"),
        str(tmp_path / "certs.d"),
        str(tmp_path / "images"),
        lean_imports=True,
    )
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"before": False, "diff_ids": [images.base.diff_id]}


def test_tls_registry_without_credentials_is_401(tmp_path: Path, secure_registry: SecureRegistry) -> None:
    store = make_store(tmp_path)
    ref = f"{secure_registry.registry.host}/test/busybox:v1"
    with pytest.raises(AuthError, match=r"denied access .*401 unauthorized; no credentials"):
        pull(store, ref, options=secure_options(tmp_path, secure_registry, user=None))
    assert_store_consistent(store)


def test_tls_registry_with_wrong_password(tmp_path: Path, secure_registry: SecureRegistry) -> None:
    store = make_store(tmp_path)
    ref = f"{secure_registry.registry.host}/test/busybox:v1"
    with pytest.raises(AuthError, match=r"refused user 'tester'"):
        pull(store, ref, options=secure_options(tmp_path, secure_registry, user="tester", password="wrong"))


def test_tls_registry_with_unknown_ca_is_refused(tmp_path: Path, secure_registry: SecureRegistry) -> None:
    store = make_store(tmp_path)
    ref = f"{secure_registry.registry.host}/test/busybox:v1"
    options = secure_options(tmp_path, secure_registry, user="tester", password="secret")
    options.certs_dirs = (tmp_path / "empty-certs.d",)
    # loopback: HTTPS fails verification, then plain HTTP is tried and refused by the TLS server
    with pytest.raises((RegistryError, RegistryUnavailable)):
        pull(store, ref, options=options)


def test_plain_http_is_refused_for_non_loopback_hosts() -> None:
    from orchestrator.runtime.images.registry import _is_loopback

    assert _is_loopback("127.0.0.1:5000") and _is_loopback("localhost:5000") and _is_loopback("[::1]:5000")
    assert not _is_loopback("registry.example.com:5000") and not _is_loopback("10.0.0.1:5000")


def test_concurrent_pulls_of_images_sharing_a_layer(
    tmp_path: Path, proxy: CuttingProxy, test_images: tuple[Path, Images]
) -> None:
    _, images = test_images
    store = make_store(tmp_path)

    async def main() -> list[Image]:
        async with RegistryClient(RegistryOptions(sleep=Sleeps())) as client:
            puller = Puller(store, client, platform=Platform("linux", "amd64"))
            out: list[Image] = []

            async def one(ref: str) -> None:
                out.append(await puller.pull(parse_reference(ref)))

            async with anyio.create_task_group() as tg:
                for repo in ("busybox", "app"):
                    tg.start_soon(one, f"{proxy.host}/test/{repo}:v1")
            return out

    pulled = anyio.run(main)
    assert len(pulled) == 2
    assert proxy.blob_requests[images.base.digest] == 1
    assert_store_consistent(store)


def test_driver_ensure_follows_pull_policy_and_platform(tmp_path: Path, proxy: CuttingProxy) -> None:
    from orchestrator.runtime.images.driver import LocalImages

    now = [1000.0]
    opts = UnpackOptions(privileged=PRIVILEGED, opaque_xattr="user.overlay.opaque")
    store = ImageStore(tmp_path / "images", unpack_options=opts, clock=lambda: now[0])
    ref = f"{proxy.host}/test/multi:v1"

    async def main() -> None:
        async with LocalImages(
            store,
            registry_options=RegistryOptions(sleep=Sleeps()),
            default_platform=Platform("linux", "amd64"),
            clock=lambda: now[0],
        ) as images:
            first = await images.ensure(ref)
            record = store.ref(str(parse_reference(ref)))
            assert record is not None and record.pulled_at == 1000.0
            now[0] += 3600
            assert await images.ensure(ref, policy="missing") == first
            assert await images.ensure(ref, policy="daily") == first
            assert store.ref(str(parse_reference(ref))).pulled_at == 1000.0  # type: ignore[union-attr]
            await images.ensure(ref, policy="every_30m")
            assert store.ref(str(parse_reference(ref))).pulled_at == 4600.0  # type: ignore[union-attr]
            arm = await images.ensure(ref, platform="linux/arm64")  # pulled for amd64: counts as absent
            assert arm.platform == "linux/arm64/v8" and arm.id != first.id
            with pytest.raises(NotFoundError, match="pull_policy is never"):
                await images.ensure(f"{proxy.host}/test/busybox:v1", policy="never")
            resolved = await images.resolve_digest(ref, platform="linux/arm64")
            assert resolved.platform_digest == arm.manifest_digest
            assert resolved.pinned == f"{parse_reference(ref)}@{resolved.digest}"

    anyio.run(main)


def test_tls_registry_with_a_credential_helper(
    tmp_path: Path, secure_registry: SecureRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-orctest"
    helper.write_text(
        "#!/bin/sh\n"
        'read server\n[ "$1" = get ] || exit 1\n'
        'echo "{\\"ServerURL\\": \\"$server\\", \\"Username\\": \\"tester\\", \\"Secret\\": \\"secret\\"}"\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    options = secure_options(tmp_path, secure_registry, user=None)
    assert options.credentials.path is not None
    options.credentials.path.write_text(json.dumps({"auths": {}, "credsStore": "orctest"}))
    store = make_store(tmp_path)
    image = pull(store, f"{secure_registry.registry.host}/test/busybox:v1", options=options)
    assert image.references


def test_basic_auth_registry(tmp_path: Path, basic_registry: SecureRegistry) -> None:
    store = make_store(tmp_path)
    ref = f"{basic_registry.registry.host}/test/busybox:v1"
    with pytest.raises(AuthError, match="requires credentials"):
        pull(store, ref, options=secure_options(tmp_path, basic_registry, user=None))
    with pytest.raises(AuthError, match="401 unauthorized"):
        pull(store, ref, options=secure_options(tmp_path, basic_registry, user="tester", password="nope"))
    image = pull(
        store, ref, options=secure_options(tmp_path, basic_registry, user="tester", password="secret")
    )
    assert image.references == (ref,)
    assert_store_consistent(store)
