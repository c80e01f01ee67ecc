"""What one health probe costs: orc's x-orc HTTP/TCP probe (a socket made in the container's
network namespace) against an exec-based check (``wget`` run inside the container), with orc,
Docker and podman.

    .venv/bin/python bench/probes.py [--probes 50] [--execs 10] [--peers docker,podman]

As root. One busybox ``httpd`` per tool, listening on the container's 127.0.0.1:8080 (orc from
a busybox-static rootfs via ``x-orc``, the peers from the peers setup's busybox image). Measured:

* orc x-orc http / tcp: ``NetnsProbeDriver.connect`` (the code the supervisor runs for every
  probe), called from this process against the running container's pid;
* ``exec wget``: the CLI command ``orc exec`` / ``docker exec`` / ``podman exec`` running
  ``wget -qO- http://127.0.0.1:8080/health`` in the container, wall clock as a user sees it
  (includes the CLI's own start; Docker's and podman's in-daemon health checks exec the same way
  without the CLI).

Prints a markdown table (medians, min/max, ratio against orc's x-orc http probe); everything is
removed at the end.
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
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.model.orc_extension import HttpProbe, TcpProbe  # noqa: E402
from orchestrator.reconciler.probes import NetnsProbeDriver  # noqa: E402
from tests.support.rootfs import build_busybox_rootfs  # noqa: E402

PEER_COMPOSE = {"docker": ["docker-compose"], "podman": ["podman-compose"]}
PEER_EXEC = {"docker": "docker", "podman": "podman"}
PEER_IMAGES = {"docker": "busybox:local", "podman": "localhost/busybox:latest"}
PEER_FALLBACKS = {"podman-compose": "/tmp/peers/bin/podman-compose"}
WGET = ["wget", "-qO-", "http://127.0.0.1:8080/health"]

COMPOSE = """
name: {project}
services:
  web:
    image: {image}
    network_mode: none{extra}
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/health; trap 'exit 0' TERM; httpd -f -p 127.0.0.1:8080 -h /www & wait"]
"""


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed, result.stdout


def netns_probes(pid: int, count: int) -> dict[str, list[float]]:
    driver = NetnsProbeDriver()
    times: dict[str, list[float]] = {"x-orc http probe": [], "x-orc tcp probe": []}

    async def main() -> None:
        for name, target in (
            ("x-orc http probe", HttpProbe(8080, "/health")),
            ("x-orc tcp probe", TcpProbe(8080)),
        ):
            for _ in range(count):
                start = time.perf_counter()
                result = await driver.connect(pid, target)
                times[name].append(time.perf_counter() - start)
                if result.exit_code != 0:
                    raise RuntimeError(f"{name} failed: {result.output}")

    anyio.run(main)
    return times


def wait_serving(check: list[str], cwd: Path, env: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            run(check, cwd, env)
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def measure_orc(root: Path, rootfs: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    project = "orcb" + uuid.uuid4().hex[:6]
    work = root / "orc"
    work.mkdir()
    (work / "compose.yaml").write_text(
        COMPOSE.format(project=project, image="busybox:orc", extra=f"\n    x-orc: {{rootfs: {rootfs}}}")
    )
    env = {**os.environ, "ORC_CGROUP_PREFIX": project}
    orc = [sys.executable, "-m", "orchestrator", "--root", str(root / "state")]
    run([*orc, "up", "-d"], work, env)
    try:
        wait_serving([*orc, "exec", "web", *WGET], work, env)
        record = root / "state" / "run" / project / "containers" / f"{project}-web-1.json"
        pid = int(json.loads(record.read_text())["pid"])
        times = netns_probes(pid, args.probes)
        times["exec wget (CLI)"] = [
            run([*orc, "exec", "web", *WGET], work, env)[0] for _ in range(args.execs)
        ]
        return times
    finally:
        subprocess.run([*orc, "down", "-t", "1"], cwd=work, env=env, capture_output=True, timeout=300)


def measure_peer(peer: str, root: Path, args: argparse.Namespace) -> dict[str, list[float]] | None:
    command = PEER_COMPOSE[peer]
    if not shutil.which(command[0]):
        fallback = PEER_FALLBACKS.get(command[0])
        if not fallback or not os.path.exists(fallback):
            print(f"(skipping {peer}: no {command[0]})", file=sys.stderr)
            return None
        command = [fallback]
    project = "orcb" + uuid.uuid4().hex[:6] + peer[:3]
    work = root / peer
    work.mkdir()
    (work / "compose.yaml").write_text(COMPOSE.format(project=project, image=PEER_IMAGES[peer], extra=""))
    env = dict(os.environ)
    run([*command, "up", "-d"], work, env)
    try:
        _, ids = run([*command, "ps", "-q"], work, env)
        container = ids.split()[0]
        exec_argv = [PEER_EXEC[peer], "exec", container, *WGET]
        wait_serving(exec_argv, work, env)
        return {"exec wget (CLI)": [run(exec_argv, work, env)[0] for _ in range(args.execs)]}
    finally:
        subprocess.run([*command, "down", "-t", "1"], cwd=work, env=env, capture_output=True, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--execs", type=int, default=10)
    parser.add_argument("--peers", default="docker,podman")
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="orcbench") as tmp:
        root = Path(tmp)
        rootfs = build_busybox_rootfs(root / "rootfs")
        results["orc"] = measure_orc(root, rootfs, args)
        for peer in [p for p in args.peers.split(",") if p]:
            try:
                measured = measure_peer(peer, root, args)
            except RuntimeError as exc:
                print(f"({peer} not measured: {str(exc).splitlines()[0][:200]})", file=sys.stderr)
                continue
            if measured is not None:
                results[peer] = measured
    baseline = statistics.median(results["orc"]["x-orc http probe"])
    print("| one health probe | tool | runs | median | min | max | vs orc x-orc http |")
    print("|---|---|---|---|---|---|---|")
    for tool, measured in results.items():
        for name, values in measured.items():
            median = statistics.median(values)
            print(
                f"| {name} | {tool} | {len(values)} | {median * 1e3:.2f} ms | {min(values) * 1e3:.2f} |"
                f" {max(values) * 1e3:.2f} | {median / baseline:.1f}× |"
            )


if __name__ == "__main__":
    main()
