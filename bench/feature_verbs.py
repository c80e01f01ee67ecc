"""``cp``, ``stats --no-stream`` and ``wait`` with orc, Docker Compose and podman-compose.

    .venv/bin/python bench/feature_verbs.py [--runs 5] [--peers docker,podman] [--size-mb 20]

As root. One project per tool: a sleeping busybox service and a one-shot job (orc from a
busybox-static rootfs via ``x-orc``, the peers from the peers setup's busybox image, all with
``network_mode: none``). Measured as a user sees it, wall-clock of the whole CLI command:
copying a file of ``--size-mb`` MB into the container and back out, ``stats --no-stream
--format json`` of the running service, and ``wait`` on the job once it has exited. Prints a
markdown table (medians, min/max, ratio against orc); everything is removed at the end.
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
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.rootfs import build_busybox_rootfs  # noqa: E402

PEER_COMPOSE = {"docker": ["docker-compose"], "podman": ["podman-compose"]}
PEER_IMAGES = {"docker": "busybox:local", "podman": "localhost/busybox:latest"}
PEER_FALLBACKS = {"podman-compose": "/tmp/peers/bin/podman-compose"}

COMPOSE = """
name: {project}
services:
  app:
    image: {image}
    network_mode: none{extra}
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
  job:
    image: {image}
    network_mode: none{extra}
    command: ["sh", "-c", "exit 3"]
"""


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed


def measure(tool: str, base: list[str], work: Path, env: dict[str, str], runs: int) -> dict[str, list[float]]:
    """Each verb ``runs`` times; a verb the tool does not have (or that fails) is left out."""
    times: dict[str, list[float]] = {}
    failed: set[str] = set()

    def attempt(name: str, argv: list[str], check: Path | None = None) -> None:
        if name in failed:
            return
        try:
            elapsed = run(argv, work, env)
            if check is not None:
                # Docker Compose's cp exits 0 even when the daemon refused the copy.
                if check.stat().st_size != (work / "payload").stat().st_size:
                    raise RuntimeError("the copy came back with another size")
                check.unlink()
        except (RuntimeError, OSError) as exc:
            failed.add(name)
            print(f"({tool}: {name} not measured: {str(exc).splitlines()[0][:200]})", file=sys.stderr)
            return
        times.setdefault(name, []).append(elapsed)

    run([*base, "up", "-d"], work, env)
    try:
        time.sleep(1.0)  # the job has exited
        for i in range(runs):
            attempt("cp host → container", [*base, "cp", str(work / "payload"), "app:/payload"])
            out = work / f"back-{i}"
            attempt("cp container → host", [*base, "cp", "app:/payload", str(out)], check=out)
            attempt("stats --no-stream --format json", [*base, "stats", "--no-stream", "--format", "json"])
            attempt("wait (exited job)", [*base, "wait", "job"])
    finally:
        subprocess.run([*base, "down", "-t", "1"], cwd=work, env=env, capture_output=True, timeout=300)
    return times


def peer_command(peer: str) -> list[str] | None:
    command = PEER_COMPOSE[peer]
    if shutil.which(command[0]):
        return command
    fallback = PEER_FALLBACKS.get(command[0])
    return [fallback] if fallback and os.path.exists(fallback) else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peers", default="docker")
    parser.add_argument("--size-mb", type=int, default=20)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="orcbench") as tmp:
        root = Path(tmp)
        rootfs = build_busybox_rootfs(root / "rootfs")
        (root / "payload").write_bytes(os.urandom(args.size_mb * 1024 * 1024))
        project = "orcb" + uuid.uuid4().hex[:6]
        work = root / "orc"
        work.mkdir()
        shutil.copy(root / "payload", work / "payload")
        (work / "compose.yaml").write_text(
            COMPOSE.format(project=project, image="busybox:orc", extra=f"\n    x-orc: {{rootfs: {rootfs}}}")
        )
        env = {**os.environ, "ORC_CGROUP_PREFIX": project}
        orc = [sys.executable, "-m", "orchestrator", "--root", str(root / "state")]
        results["orc"] = measure("orc", orc, work, env, args.runs)
        for peer in [p for p in args.peers.split(",") if p]:
            command = peer_command(peer)
            if command is None:
                print(f"(skipping {peer}: no {PEER_COMPOSE[peer][0]})", file=sys.stderr)
                continue
            work = root / peer
            work.mkdir()
            shutil.copy(root / "payload", work / "payload")
            (work / "compose.yaml").write_text(
                COMPOSE.format(project=project + peer[:3], image=PEER_IMAGES[peer], extra="")
            )
            results[peer] = measure(peer, command, work, dict(os.environ), args.runs)
    print(f"| measurement ({args.size_mb} MB file for cp) | tool | runs | median | min | max | vs orc |")
    print("|---|---|---|---|---|---|---|")
    for name in results["orc"]:
        baseline = statistics.median(results["orc"][name])
        for tool, measured in results.items():
            values = measured.get(name)
            if not values:
                print(f"| {name} | {tool} | – | not available | | | |")
                continue
            median = statistics.median(values)
            ratio = "–" if tool == "orc" else f"{median / baseline:.1f}×"
            print(
                f"| {name} | {tool} | {len(values)} | {median * 1e3:.0f} ms | {min(values) * 1e3:.0f} |"
                f" {max(values) * 1e3:.0f} | {ratio} |"
            )


if __name__ == "__main__":
    main()
