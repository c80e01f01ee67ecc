"""How long a cold supervisor takes from spawn to "ready" (it listens), as `orc up` waits for it.

    .venv/bin/python bench/supervisor_boot.py [--runs 9] [--compare DIR]

As root. Spawns ``python -m orchestrator.daemon.supervisor`` for an empty project under a private
root with ``--ready-fd`` and times until it writes "ready", then stops it with SIGTERM (its fork
server shuts down with it). ``--compare DIR`` alternates runs with ``PYTHONPATH=DIR`` (e.g. an
older tree from ``git archive <commit> orchestrator | tar -x -C DIR``) and prints both with their
ratio. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def boot_once(root: Path, pythonpath: str | None) -> float:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    ready_r, ready_w = os.pipe()
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator.daemon.supervisor",
            "--project",
            "orcbboot",
            "--run-root",
            str(root / "run"),
            "--lib-root",
            str(root / "lib"),
            "--cgroup-prefix",
            "orcbboot",
            "--ready-fd",
            str(ready_w),
        ],
        pass_fds=[ready_w],
        env=env,
    )
    os.close(ready_w)
    try:
        os.read(ready_r, 100)
        elapsed = time.perf_counter() - started
    finally:
        os.close(ready_r)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return elapsed


def row(name: str, times: list[float], reference: float | None) -> str:
    median = statistics.median(times)
    ratio = f"{median / reference:.2f}×" if reference else "–"
    return f"| {name} | {len(times)} | {median * 1e3:.0f} ms | {min(times) * 1e3:.0f} | {max(times) * 1e3:.0f} | {ratio} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--compare", default=None, help="a tree to alternate with (PYTHONPATH)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="orcbboot"))
    current: list[float] = []
    other: list[float] = []
    try:
        for _ in range(args.runs):
            if args.compare:
                other.append(boot_once(root, args.compare))
            current.append(boot_once(root, None))
    finally:
        time.sleep(0.5)  # the fork server exits after its runtime's shutdown request
        shutil.rmtree(root, ignore_errors=True)
    reference = statistics.median(current)
    print("| measurement | runs | median | min | max | vs this tree |")
    print("|---|---|---|---|---|---|")
    print(row("supervisor spawn → ready (this tree)", current, None))
    if other:
        print(row(f"supervisor spawn → ready ({args.compare})", other, reference))


if __name__ == "__main__":
    main()
