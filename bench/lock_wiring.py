"""What pinning images costs: ``config --resolve-image-digests`` (orc vs Docker Compose) and the
``up --locked`` check.

    .venv/bin/python bench/lock_wiring.py [--runs 7] [--images 10] [--no-peers]

Pushes one small image under ``--images`` tags to a ``docker-registry`` (distribution 2.8) on
127.0.0.1 and writes a project with one service per tag, then times, as a user runs them:

* ``orc config`` (no registry access: the floor) and ``orc config --resolve-image-digests`` (one
  manifest ``HEAD``/``GET`` per image, from a fresh process each run);
* ``docker-compose config --resolve-image-digests`` (Compose v2 asks the Docker daemon, which asks
  the registry), when a Docker daemon runs;
* ``orc lock`` (resolves every image and writes ``compose.lock``);
* ``orc up --dry-run`` and ``orc up --dry-run --locked`` (reading and checking the lock and
  pinning the plan; nothing is started).

Prints a markdown table: median, min, max, ratio against ``orc config``. The registry and its
directory are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.images.support import (  # noqa: E402
    Entry,
    ImageSpec,
    Registry,
    make_layer,
    skopeo_push,
    tar_of_entries,
    write_layout,
)

ORC = [sys.executable, "-m", "orchestrator"]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    elapsed = (time.perf_counter() - start) * 1e3
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr}")
    return elapsed


def docker_runs() -> bool:
    if shutil.which("docker-compose") is None or shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="orcbench-lock-"))
    registry = None
    try:
        layout = work / "layout"
        layer = make_layer(tar_of_entries([Entry("hello.txt", data=b"hello\n")]), "gzip")
        write_layout(layout, [ImageSpec([layer])], "v1")
        registry = Registry(work / "registry")
        for i in range(args.images):
            skopeo_push(layout, "v1", registry, f"bench/img{i}")
        project = work / "project"
        project.mkdir()
        lines = ["name: orcbenchlock", "services:"]
        for i in range(args.images):
            lines += [f"  s{i}:", f"    image: {registry.host}/bench/img{i}:v1"]
        (project / "compose.yaml").write_text("\n".join(lines) + "\n")
        env = {**os.environ, "ORC_CGROUP_PREFIX": "orcbenchlock"}
        root = ["--root", str(work / "root")]

        cases: list[tuple[str, list[str]]] = [
            ("orc config", [*ORC, *root, "config"]),
            ("orc config --resolve-image-digests", [*ORC, *root, "config", "--resolve-image-digests"]),
        ]
        if not args.no_peers and docker_runs():
            cases.append(
                (
                    "docker-compose config --resolve-image-digests",
                    ["docker-compose", "config", "--resolve-image-digests"],
                )
            )
        cases += [
            ("orc lock", [*ORC, *root, "lock"]),
            ("orc up --dry-run", [*ORC, *root, "up", "--dry-run"]),
            ("orc up --dry-run --locked", [*ORC, *root, "up", "--dry-run", "--locked"]),
        ]
        timed(cases[0][1], project, env)  # warm the page cache
        timed([*ORC, *root, "lock"], project, env)  # the --locked case needs a lock file
        results: dict[str, list[float]] = {name: [] for name, _ in cases}
        for _ in range(args.runs):
            for name, cmd in cases:  # interleaved, so load changes hit every case alike
                results[name].append(timed(cmd, project, env))
    finally:
        if registry is not None:
            registry.close()
        shutil.rmtree(work, ignore_errors=True)

    floor = statistics.median(results["orc config"])
    print(f"{args.images} images on a loopback registry, {args.runs} runs each (ms)\n")
    print("| command | median | min | max | vs orc config |")
    print("|---|---:|---:|---:|---:|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.0f} | {min(values):.0f} | {max(values):.0f} | {median / floor:.2f}x |")


if __name__ == "__main__":
    main()
