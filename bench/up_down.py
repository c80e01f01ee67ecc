"""`up -d` and `down` of generated N-service stacks with orc, Docker Compose and podman-compose.

    .venv/bin/python bench/up_down.py [--sizes 30,100] [--runs 3] [--peers docker,podman]
        [--compare DIR] [--chain]

``--compare DIR`` also runs the orc of another checkout (``PYTHONPATH=DIR``, e.g. an older commit
unpacked with ``git archive``), alternating run by run with this tree, as tool ``before``. The
peers' runs (``--peer-runs``) are spread among orc's (with ``--runs 6 --peer-runs 3``: after orc's
runs 0, 2 and 4), each followed by a pause of ``PEER_SETTLE`` seconds (the engine's clean-up after
its ``down`` goes on for a while), so that a drift of the machine's speed during the bench weighs
on every tool alike and the ratios compare like with like; orc and ``before`` take turns going
first.

As root. Stacks come from ../shared/tools/gen-stack.py (busybox, depends_on in layers of 5, every
service answers SIGTERM); with ``--chain`` each service depends on the one before it instead (a
dependency chain as deep as the stack: its starts cannot overlap, so the latency of each one
counts). orc runs them from a busybox rootfs (``x-orc: {rootfs: ...}``, built from
busybox-static) under a private ``--root`` and cgroup prefix; the peers use their ``busybox:local``
image (made by the peers setup). Times are wall-clock of the whole CLI command, as a user sees it;
"no-op up -d" is a second ``up -d`` of the running stack (nothing to change). Also measured for orc: crash → running again (SIGKILL of a container with a zero-delay restart
policy, polled on its state file) and, in every run, the RSS and PSS of every orc process
(supervisor, fork server and its helpers) 1 s after the stack is up (reported as medians, in MiB
of 1024 KiB). Prints a markdown table; everything is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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

GEN_STACK = REPO.parent / "shared" / "tools" / "gen-stack.py"
PEER_COMPOSE = {
    "docker": ["docker-compose"],
    "podman": ["podman-compose"],
}
# Seconds of rest after a peer's run: the engine goes on cleaning up after its ``down`` returned
# (containerd's shims, the bridge's ports), which a run right after it otherwise pays for.
PEER_SETTLE = 5.0
# The busybox image the peers setup made in each engine.
PEER_IMAGES = {"docker": "busybox:local", "podman": "localhost/busybox:latest"}
# Where the peers setup puts podman-compose when it is not on PATH.
PEER_FALLBACKS = {"podman-compose": ["/tmp/peers/bin/podman-compose"]}


def generate(n: int, rootfs: Path | None, image: str = "busybox:local", chain: bool = False) -> str:
    text = subprocess.run(
        [sys.executable, str(GEN_STACK), str(n), image], capture_output=True, text=True, check=True
    ).stdout
    if chain:
        chained = []
        for line in text.splitlines():
            if line.strip().startswith("depends_on:"):
                continue
            chained.append(line)
            if line.strip().startswith("command:") and chained[-3].strip() != "s0:":
                number = int(chained[-3].strip()[1:-1])
                chained.append(f"    depends_on: [s{number - 1}]")
        text = "\n".join(chained) + "\n"
    if rootfs is None:
        return text
    lines = []
    for line in text.splitlines():
        lines.append(line)
        if line.strip().startswith("image:"):
            lines.append(f"    x-orc: {{rootfs: {rootfs}}}")
    # s1 restarts at once when killed: the crash → running measurement uses it.
    out = "\n".join(lines) + "\n"
    return out.replace("  s1:\n", "  s1:\n    deploy: {restart_policy: {condition: any, delay: 0s}}\n", 1)


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def orc_processes(supervisor_pid: int) -> list[int]:
    """The supervisor and its descendants that run orc's Python code (not the containers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [supervisor_pid]
    while stack:
        pid = stack.pop()
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"orchestrator" in cmdline:
            found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def pss_kib(pids: list[int]) -> int:
    """Proportional set size: shared pages (the fork server and its forked helpers) counted once."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def crash_to_running(state: Path, name: str, runs: int) -> list[float]:
    path = state / "containers" / f"{name}.json"
    times = []
    for _ in range(runs):
        record = json.loads(path.read_text())
        old = record["pid"]
        start = time.perf_counter()
        os.kill(old, signal.SIGKILL)
        while True:
            try:
                record = json.loads(path.read_text())
            except ValueError:
                continue
            if record["status"] == "running" and record["pid"] not in (None, old):
                break
            if time.perf_counter() - start > 10:
                raise RuntimeError("container did not come back within 10 s")
            time.sleep(0.0005)
        times.append((time.perf_counter() - start) * 1e3)
        time.sleep(0.2)
    return times


def bench_orc(
    n: int,
    run: int,
    rootfs: Path,
    results: dict[str, list[float]],
    extra: dict[str, object],
    compare: Path | None = None,
    chain: bool = False,
) -> None:
    """Run ``run`` of orc and of the ``--compare`` tree, which goes first in every other run
    (so that neither always follows a peer's run or the other's)."""
    tools: list[tuple[str, dict[str, str]]] = [("orc", {})]
    if compare is not None:
        tools.append(("before", {"PYTHONPATH": str(compare)}))
        if run % 2:
            tools.reverse()
    for tool, env in tools:
        bench_orc_once(n, run, rootfs, results, extra, tool, env, chain)


def bench_orc_once(
    n: int,
    run: int,
    rootfs: Path,
    results: dict[str, list[float]],
    extra: dict[str, object],
    tool: str,
    env_extra: dict[str, str],
    chain: bool = False,
) -> None:
    size = f"{n}, chain" if chain else f"{n}"
    with tempfile.TemporaryDirectory(prefix="orcbench") as tmp:
        work = Path(tmp)
        project = "orcb" + uuid.uuid4().hex[:6]
        (work / "compose.yaml").write_text(f"name: {project}\n" + generate(n, rootfs, chain=chain))
        env = {**os.environ, "ORC_CGROUP_PREFIX": project, **env_extra}
        # As an installed package runs: with its bytecode cached (this VM sets the variable,
        # which alone makes every supervisor compile its modules again, ~0.2 s of CPU).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        orc = [sys.executable, "-m", "orchestrator", "--root", str(work / "root")]
        try:
            results.setdefault(f"{tool} up -d ({size})", []).append(timed([*orc, "up", "-d"], work, env))
            # the same again: nothing to change (the plan is empty, nothing restarts)
            results.setdefault(f"{tool} no-op up -d ({size})", []).append(
                timed([*orc, "up", "-d"], work, env)
            )
            state = work / "root" / "run" / project
            if not chain:
                supervisor = json.loads((state / "project.json").read_text())["supervisor_pid"]
                time.sleep(1.0)
                processes = orc_processes(supervisor)
                memory = extra.setdefault("memory", {})
                assert isinstance(memory, dict)
                memory.setdefault(f"{tool} RSS of all orc processes, {n} containers", []).append(
                    rss_kib(processes)
                )
                memory.setdefault(f"{tool} PSS of all orc processes, {n} containers", []).append(
                    pss_kib(processes)
                )
                memory.setdefault(f"{tool} RSS of the supervisor alone, {n} containers", []).append(
                    rss_kib([supervisor])
                )
                extra[f"{tool} processes with {n} containers"] = len(processes)
            if run == 0 and not chain and 2 <= n <= 30:  # s1 exists from two services on
                results.setdefault(f"{tool} crash → running (ms)", []).extend(
                    crash_to_running(state, f"{project}-s1-1", 10)
                )
            results.setdefault(f"{tool} down ({size})", []).append(timed([*orc, "down"], work, env))
        finally:
            subprocess.run([*orc, "down", "-t", "0"], cwd=work, env=env, capture_output=True, timeout=300)


def peer_command(peer: str) -> list[str] | None:
    """The peer's compose command, or None (with a note in the output) when it is not installed."""
    command = list(PEER_COMPOSE[peer])
    found = shutil.which(command[0]) or next(
        (p for p in PEER_FALLBACKS.get(command[0], []) if os.access(p, os.X_OK)), None
    )
    if found is None:
        print(f"<!-- {peer}: {command[0]} not found -->")
        return None
    command[0] = found
    return command


def peer_network_left(peer: str, project: str) -> bool:
    """Whether the engine still has a network of ``project`` (``<project>_default``)."""
    listed = subprocess.run(  # the engine's own CLI is named as the peer is
        [peer, "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True, timeout=60
    )
    return any(name.startswith(f"{project}_") for name in listed.stdout.split())


def peer_schedule(runs: int, peer_runs: int) -> list[int]:
    """How many times each peer runs after each of orc's runs: ``peer_runs`` spread evenly
    (``6, 3`` → ``[1, 0, 1, 0, 1, 0]``)."""
    counts = [0] * runs
    for i in range(peer_runs if runs else 0):
        counts[(i * runs) // peer_runs] += 1
    return counts


def bench_peer(
    peer: str, command: list[str], n: int, runs: int, results: dict[str, list[float]], chain: bool = False
) -> None:
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="orcbench") as tmp:
            work = Path(tmp)
            project = "peerb" + uuid.uuid4().hex[:6]
            (work / "compose.yaml").write_text(generate(n, None, PEER_IMAGES[peer], chain=chain))
            size = f"{n}, chain" if chain else f"{n}"
            argv = [*command, "-f", str(work / "compose.yaml"), "-p", project]
            try:
                up = timed([*argv, "up", "-d"], work, dict(os.environ))
                results.setdefault(f"{peer} up -d ({size})", []).append(up)
                again = timed([*argv, "up", "-d"], work, dict(os.environ))
                results.setdefault(f"{peer} no-op up -d ({size})", []).append(again)
                down = timed([*argv, "down"], work, dict(os.environ))
                results.setdefault(f"{peer} down ({size})", []).append(down)
            except RuntimeError as exc:
                print(f"<!-- {peer} failed: {str(exc)[:300]} -->")
            finally:
                # Whatever happened (an interrupted bench too), the project's containers and its
                # network go: a left-over bridge was found after one session's runs, and again
                # after a later one (the engine may refuse to remove a network while it still
                # cleans up its endpoints: try again a few times).
                for _attempt in range(5):
                    cleaned = subprocess.run(
                        [*argv, "down", "-t", "0"], cwd=work, capture_output=True, timeout=600
                    )
                    if cleaned.returncode == 0 and not peer_network_left(peer, project):
                        break
                    time.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="30,100")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peer-runs", type=int, default=1)
    parser.add_argument("--peers", default="docker,podman")
    parser.add_argument("--compare", type=Path, default=None, help="another checkout, run as 'before'")
    parser.add_argument("--chain", action="store_true", help="each service depends on the one before it")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, list[float]] = {}
    extra: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="orcbench-rootfs") as tmp:
        rootfs = build_busybox_rootfs(Path(tmp) / "rootfs")
        peers = {p: c for p in args.peers.split(",") if p and (c := peer_command(p)) is not None}
        schedule = peer_schedule(args.runs, args.peer_runs)
        for n in sizes:
            for run in range(args.runs):
                bench_orc(n, run, rootfs, results, extra, args.compare, args.chain)
                for peer, command in peers.items():
                    for _ in range(schedule[run]):
                        bench_peer(peer, command, n, 1, results, args.chain)
                        time.sleep(PEER_SETTLE)
            if not args.runs:
                for peer, command in peers.items():
                    bench_peer(peer, command, n, args.peer_runs, results, args.chain)

    print("| measurement | runs | median | min | max | vs orc |")
    print("|---|---|---|---|---|---|")
    for key in sorted(results, key=lambda k: (k.split("(")[-1], k.split()[1], k.split()[0])):
        values = results[key]
        unit = "ms" if "ms" in key else "s"
        median = statistics.median(values)
        tool, _, what = key.partition(" ")
        orc_key = f"orc {what}"
        ratio = (
            f"{median / statistics.median(results[orc_key]):.1f}×"
            if orc_key in results and tool != "orc"
            else "–"
        )
        fmt = (lambda v: f"{v:.1f}") if unit == "ms" else (lambda v: f"{v:.2f}")
        print(
            f"| {key} | {len(values)} | {fmt(median)} {unit} | {fmt(min(values))} | {fmt(max(values))} | {ratio} |"
        )
    memory = extra.pop("memory", {})
    assert isinstance(memory, dict)
    for key, kib in memory.items():
        # MiB: KiB / 1024 (the KiB column is what /proc reports)
        median = statistics.median(kib)
        print(
            f"| {key} | {len(kib)} | {median / 1024:.2f} MiB ({median:.0f} KiB) | {min(kib) / 1024:.2f} |"
            f" {max(kib) / 1024:.2f} | – |"
        )
    for key, value in extra.items():
        print(f"| {key} | 1 | {value} | | | |")


if __name__ == "__main__":
    main()
