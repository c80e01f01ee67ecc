"""Chart of `up -d` and `down` time against stack size for orc, Docker Compose and podman-compose.

    .venv/bin/python bench/chart.py --run [--sizes 1,10,30,100] [--runs 3] [--peer-runs 1]
    .venv/bin/python bench/chart.py            # redraw from the saved results

``--run`` runs ``bench/up_down.py`` (which owns the measuring and the cleanup of every peer's
containers and networks) and saves its markdown table, with the command line, in
``bench/results/up_down_sizes.md``; the chart is drawn from that file into
``bench/results/up_down_sizes.png`` (log-log, medians with min–max error bars). Needs the
``bench`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import re
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "up_down_sizes.md"
CHART = BENCH / "results" / "up_down_sizes.png"
ROW = re.compile(
    r"^\| (?P<tool>\w+) (?P<verb>up -d|down) \((?P<n>\d+)\) \| (?P<runs>\d+) \| (?P<median>[\d.]+) s \| (?P<min>[\d.]+) \| (?P<max>[\d.]+) \|"
)
TOOLS = {"orc": "orc", "docker": "Docker Compose v2", "podman": "podman-compose"}

Series = dict[tuple[str, str], list[tuple[int, float, float, float]]]


def measure(sizes: str, runs: int, peer_runs: int) -> None:
    """Run ``bench/up_down.py``'s ``main`` in-process and save the table it prints.

    up_down.py measures crash → running on the service ``s1``, which a 1-service stack lacks
    (gen-stack names it ``s0``); for that size the crash measurement is skipped here.
    """
    sys.path.insert(0, str(BENCH))
    import up_down

    measure_crash = up_down.crash_to_running

    def crash_when_present(state: Path, name: str, runs: int) -> list[float]:
        if not (state / "containers" / f"{name}.json").exists():
            return []
        return list(measure_crash(state, name, runs))

    up_down.crash_to_running = crash_when_present
    arguments = [
        "--sizes",
        sizes,
        "--runs",
        str(runs),
        "--peer-runs",
        str(peer_runs),
        "--peers",
        "docker,podman",
    ]
    table = io.StringIO()
    saved_argv = sys.argv
    sys.argv = ["up_down.py", *arguments]
    try:
        with contextlib.redirect_stdout(table):
            up_down.main()
    finally:
        sys.argv = saved_argv
    shown = " ".join([".venv/bin/python bench/chart.py --run", *arguments[:6]])
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    RESULTS.write_text(
        "# up/down against stack size\n\n"
        f"Command: `{shown}` (runs bench/up_down.py's measurements), {when}.\n\n"
        f"{table.getvalue()}\n![up/down time against stack size](up_down_sizes.png)\n"
    )


def parse(text: str) -> Series:
    series: Series = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            point = (int(match["n"]), float(match["median"]), float(match["min"]), float(match["max"]))
            series.setdefault((match["tool"], match["verb"]), []).append(point)
    for points in series.values():
        points.sort()
    return series


def draw(series: Series, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for axis, verb in zip(axes, ("up -d", "down"), strict=True):
        for tool, label in TOOLS.items():
            points = series.get((tool, verb))
            if not points:
                continue
            sizes = [p[0] for p in points]
            medians = [p[1] for p in points]
            errors = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
            axis.errorbar(sizes, medians, yerr=errors, marker="o", capsize=3, label=label)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(f"`{verb}` wall-clock time")
        axis.set_xlabel("services in the stack")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds (median, min–max)")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="store_true", help="measure first (calls bench/up_down.py)")
    parser.add_argument("--sizes", default="1,10,30,100")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peer-runs", type=int, default=1)
    args = parser.parse_args()
    if args.run:
        measure(args.sizes, args.runs, args.peer_runs)
    series = parse(RESULTS.read_text())
    if not series:
        sys.exit(f"no up/down rows in {RESULTS}")
    draw(series, CHART)
    print(f"chart: {CHART} from {RESULTS}")


if __name__ == "__main__":
    main()
