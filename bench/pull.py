"""Pull + unpack of a ~100 MB multi-layer image from a loopback registry: orc vs skopeo, docker, podman.

    .venv/bin/python bench/pull.py [--runs 3] [--mb 100] [--no-peers]

Builds an image of four layers of incompressible random content (40/30/20/10 % of ``--mb``, gzip)
plus a second image sharing those four layers and adding a 1 MB one, pushes both with skopeo to a
``docker-registry`` (distribution 2.8) on 127.0.0.1, then times, from a cold store each run:

* orc's engine in-process (what ``up`` runs inside the supervisor): download, digest check and
  unpack into overlay lower dirs, streamed (no compressed copy is written);
* ``orc pull`` (the CLI, as a user runs it): the same plus starting and ending a Python process;
* ``skopeo copy docker://… oci:DIR`` (download and verify only, no unpacking);
* ``docker pull`` (the daemon downloads and unpacks into overlay2; the image is removed after);
* ``podman pull`` into a private ``--root`` (download and unpack into containers-storage).

Then the second image is pulled into orc's warm store: the bytes it downloads (counted from orc's
progress events) must be only the new layer. Prints a markdown table (median, min, max, MB/s,
ratio against orc's engine). Everything (registry, dirs, the docker image) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

from orchestrator.runtime.images.pull import Puller  # noqa: E402
from orchestrator.runtime.images.reference import parse_reference  # noqa: E402
from orchestrator.runtime.images.registry import RegistryClient  # noqa: E402
from orchestrator.runtime.images.store import ImageStore  # noqa: E402
from tests.integration.images.support import (  # noqa: E402
    ImageSpec,
    Registry,
    random_layer,
    skopeo_push,
    write_layout,
)

ORC = [sys.executable, "-m", "orchestrator"]


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload, no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=int, default=100, help="total image size in MB")
    parser.add_argument("--no-peers", action="store_true", help="only orc and skopeo")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="orcbench-pull-"))
    registry: Registry | None = None
    docker_ref: str | None = None
    try:
        total = args.mb * 1_000_000
        t0 = time.perf_counter()
        layers = [
            random_layer(int(total * share), seed=i, files=8) for i, share in enumerate((0.4, 0.3, 0.2, 0.1))
        ]
        extra = random_layer(1_000_000, seed=99, files=2)
        write_layout(work / "big", [ImageSpec(layers)], "v1")
        write_layout(work / "big2", [ImageSpec([*layers, extra])], "v2")
        blob_bytes = sum(len(layer.blob) for layer in layers)
        registry = Registry(work / "registry")
        repo = f"orcbench/{uuid.uuid4().hex[:8]}"
        skopeo_push(work / "big", "v1", registry, repo)
        skopeo_push(work / "big2", "v2", registry, repo)
        print(
            f"prepared {blob_bytes / 1e6:.0f} MB in {len(layers)} layers in {time.perf_counter() - t0:.1f}s",
            file=sys.stderr,
        )
        ref = f"{registry.host}/{repo}:v1"

        results: dict[str, list[float]] = {}

        def orc_pull(root: Path, reference: str) -> None:
            run([*ORC, "--root", str(root), "pull", "--quiet", reference])

        def engine_pull(root: Path, reference: str) -> None:
            """What ``up`` does inside the supervisor: the Puller, no CLI process around it."""
            store = ImageStore(root / "images")

            async def go() -> None:
                async with RegistryClient() as client:
                    await Puller(store, client).pull(parse_reference(reference))

            anyio.run(go)

        def add(tool: str, fn: Callable[[], None]) -> None:
            results.setdefault(tool, []).append(timed(fn))

        have_docker = (
            not args.no_peers
            and shutil.which("docker") is not None
            and (subprocess.run(["docker", "info"], capture_output=True).returncode == 0)
        )
        have_podman = not args.no_peers and shutil.which("podman") is not None
        for i in range(args.runs):
            engine_root = work / f"engine-{i}"
            add("orc engine, in-process (download + unpack)", partial(engine_pull, engine_root, ref))
            shutil.rmtree(engine_root, ignore_errors=True)
            orc_root = work / f"orc-{i}"
            add("orc pull CLI (download + unpack)", partial(orc_pull, orc_root, ref))
            dest = work / f"skopeo-{i}"
            skopeo = ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{dest}:v1"]
            add("skopeo copy to oci: (download only)", partial(run, skopeo))
            if have_docker:
                docker_ref = ref
                add("docker pull (download + unpack)", partial(run, ["docker", "pull", "-q", ref]))
                run(["docker", "rmi", ref])
                docker_ref = None
            if have_podman:
                proot = work / f"podman-{i}"
                podman = ["podman", "--root", str(proot / "root"), "--runroot", str(proot / "run")]
                pull_cmd = [*podman, "--storage-driver", "overlay", "pull", "-q", "--tls-verify=false", ref]
                add("podman pull (download + unpack)", partial(run, pull_cmd))
                subprocess.run([*podman, "system", "reset", "-f"], capture_output=True)
            if i < args.runs - 1:
                shutil.rmtree(orc_root, ignore_errors=True)
                shutil.rmtree(dest, ignore_errors=True)

        # second stack sharing the four layers, into the last run's warm orc store
        orc_root = work / f"orc-{args.runs - 1}"
        proc = subprocess.run(
            [*ORC, "--root", str(orc_root), "pull", "--progress", "json", f"{registry.host}/{repo}:v2"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        downloaded: dict[str, int] = {}
        for e in events:
            if e["event"] == "downloading":
                downloaded[e["layer"]] = e["current"]
        reused = [e["layer"] for e in events if e["event"] == "exists"]
        shared_time = timed(partial(engine_pull, work / "engine-shared", f"{registry.host}/{repo}:v1"))
        second_time = timed(partial(engine_pull, work / "engine-shared", f"{registry.host}/{repo}:v2"))
        startup = [timed(partial(run, [*ORC, "version"])) for _ in range(3)]

        base = statistics.median(results["orc engine, in-process (download + unpack)"])
        print(f"Image: {len(layers)} layers, {blob_bytes / 1e6:.1f} MB compressed (random content), "
              f"loopback docker-registry 2.8, {args.runs} runs, cold store each run.\n")  # fmt: skip
        print("| tool | median s | min s | max s | MB/s | vs orc |")
        print("|---|---|---|---|---|---|")
        for tool, times in results.items():
            med = statistics.median(times)
            print(
                f"| {tool} | {med:.2f} | {min(times):.2f} | {max(times):.2f} | "
                f"{blob_bytes / 1e6 / med:.0f} | {med / base:.2f}x |"
            )
        print()
        print("| second image sharing 4 layers (+1 MB new) | value |")
        print("|---|---|")
        print(f"| layers reused (not downloaded) | {len(reused)} of {len(reused) + len(downloaded)} |")
        print(f"| bytes downloaded | {sum(downloaded.values()):,} (new layer blob: {len(extra.blob):,}) |")
        print(f"| engine time for the second pull | {second_time:.2f} s (first image: {shared_time:.2f} s) |")
        print()
        print(f"`orc version` (CLI start and exit, no work): median {statistics.median(startup):.2f} s")
    finally:
        if docker_ref:
            subprocess.run(["docker", "rmi", docker_ref], capture_output=True)
        if registry is not None:
            registry.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.umask(0o022)
    main()
