"""How long ``orc doctor`` takes on this host, part by part, next to ``docker info``/``podman info``.

    .venv/bin/python bench/doctor.py [--runs 10]

Run as root (the sandbox probe and the cgroup probe only run as root). Measures the whole CLI
(``orc doctor --format json`` as a fresh process, cold start included), ``orc version`` (the CLI's
floor), ``diagnose()`` in-process, and its expensive parts alone: the sandbox probe (a child
process that mounts an overlay and creates links in private namespaces), reading host routes
over netlink, loading libseccomp, ``nft list tables``. The peers report what they know of the
host (``docker info`` asks its running daemon, ``podman info`` probes like orc does). Prints a
markdown table: medians, min/max, ratio to ``orc doctor``.
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.runtime.doctor import DoctorOptions, LocalHost, diagnose  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def run_quiet(argv: list[str]) -> Callable[[], object]:
    def go() -> None:
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    return go


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the sandbox and cgroup probes only run as root")
    state = Path(tempfile.mkdtemp(prefix="orcbench-doctor-"))
    (state / "lib").mkdir()
    host = LocalHost()
    options = DoctorOptions(run_root=state / "run", lib_root=state / "lib")
    cases: list[tuple[str, Callable[[], object]]] = [
        (
            "orc doctor --format json (new process)",
            run_quiet([PYTHON, "-m", "orchestrator", "doctor", "--format", "json"]),
        ),
        ("orc version (CLI floor)", run_quiet([PYTHON, "-m", "orchestrator", "version"])),
        ("diagnose() in-process", lambda: diagnose(host, options)),
        ("  sandbox probe (overlay + bridge + veth)", lambda: host.sandbox(str(state / "lib"))),
        ("  host routes (netlink)", host.host_routes),
        ("  libseccomp load", host.libseccomp_version),
        ("  nft list tables", lambda: host.run(["nft", "list", "tables"])),
    ]
    for name, argv in (("docker info", ["docker", "info"]), ("podman info", ["podman", "info"])):
        if shutil.which(argv[0]):
            cases.append((f"{name} (peer)", run_quiet(argv)))
    rows = []
    try:
        for name, fn in cases:
            fn()  # warm-up
            samples = [timed(fn) for _ in range(args.runs)]
            rows.append((name, statistics.median(samples), min(samples), max(samples)))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    reference = rows[0][1]
    print(f"orc doctor timings, {args.runs} runs each, {os.cpu_count()} CPUs\n")
    print("| what | median ms | min ms | max ms | × orc doctor |")
    print("|---|---:|---:|---:|---:|")
    for name, median, low, high in rows:
        print(f"| {name} | {median:.1f} | {low:.1f} | {high:.1f} | {median / reference:.2f} |")


if __name__ == "__main__":
    main()
