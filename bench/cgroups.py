"""How long the cgroup driver takes per container on this host (run as root).

    .venv/bin/python bench/cgroups.py [--runs 200] [--attach-runs 30]

Measures create / remove of one container's cgroups (with and without limits), the same writes
done with bare os calls (the floor any implementation pays), joining a process (the parent
writing its pid to cgroup.procs vs the single-threaded child writing 0 to tasks itself),
freeze+thaw, and a stats read. Everything lives under ``<own cgroup>/orcbench<random>/`` and is
removed at the end. Prints a markdown table: medians, min/max, ratio vs the bare-os floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.runtime.cgroups import (
    CgroupHandle,
    CgroupLimits,
    DriverOptions,
    V1Driver,
    V2Driver,
    open_driver,
)

LIMITS = CgroupLimits(memory=64 << 20, cpus=0.5, pids_limit=64)
PROJECT = "bench"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def bare_create(driver: V1Driver | V2Driver, name: str) -> list[Path]:
    """The writes the driver does for LIMITS with default devices, as plain os calls."""
    dirs = []
    for hierarchy in driver.layout.hierarchies:
        directory = hierarchy.own_dir / driver.prefix / PROJECT / name
        os.mkdir(directory)
        dirs.append(directory)

    def put(path: Path, value: str) -> None:
        fd = os.open(path, os.O_WRONLY)
        os.write(fd, value.encode())
        os.close(fd)

    if driver.version == 1:
        by = {c: d for h, d in zip(driver.layout.hierarchies, dirs, strict=True) for c in h.controllers}
        put(by["memory"] / "memory.limit_in_bytes", str(64 << 20))
        put(by["memory"] / "memory.memsw.limit_in_bytes", str(128 << 20))
        put(by["cpu"] / "cpu.cfs_period_us", "100000")
        put(by["cpu"] / "cpu.cfs_quota_us", "50000")
        put(by["pids"] / "pids.max", "64")
        put(by["devices"] / "devices.deny", "a")
        for rule in LIMITS.device_rules() or ():
            put(by["devices"] / "devices.allow", rule.line())
    else:
        put(dirs[0] / "memory.max", str(64 << 20))
        put(dirs[0] / "cpu.max", "50000 100000")
        put(dirs[0] / "pids.max", "64")
    return dirs


def attach_by_parent(handle: CgroupHandle) -> float:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    start = time.perf_counter()
    for procs in handle.procs_files:
        fd = os.open(procs, os.O_WRONLY)
        os.write(fd, str(pid).encode())
        os.close(fd)
    elapsed = (time.perf_counter() - start) * 1e3
    os.close(write_end)
    os.waitpid(pid, 0)
    return elapsed


def attach_by_self(handle: CgroupHandle) -> float:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        start = time.perf_counter()
        for name in handle.join_files:
            fd = os.open(name, os.O_WRONLY)
            os.write(fd, b"0")
            os.close(fd)
        os.write(write_end, repr((time.perf_counter() - start) * 1e3).encode())
        os._exit(0)
    os.close(write_end)
    elapsed = float(os.read(read_end, 64))
    os.close(read_end)
    os.waitpid(pid, 0)
    return elapsed


def row(name: str, samples: list[float], floor: float | None) -> str:
    median = statistics.median(samples)
    ratio = f"{median / floor:.2f}×" if floor else "–"
    return f"| {name} | {len(samples)} | {median:.3f} | {min(samples):.3f} | {max(samples):.3f} | {ratio} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--attach-runs", type=int, default=30)
    args = parser.parse_args()
    prefix = "orcbench" + uuid.uuid4().hex[:6]
    driver = open_driver(DriverOptions(prefix=prefix))
    results: dict[str, list[float]] = {k: [] for k in ("create", "create0", "bare", "remove", "bare_rm")}
    extra: dict[str, list[float]] = {k: [] for k in ("parent", "self", "freeze", "stats")}
    try:
        driver.create(PROJECT, "warmup", CgroupLimits())  # makes <prefix>/<project> once
        driver.remove(driver.open(PROJECT, "warmup"))  # type: ignore[arg-type]
        for i in range(args.runs):
            t0 = time.perf_counter()
            limited = driver.create(PROJECT, f"l{i}", LIMITS)
            t1 = time.perf_counter()
            plain = driver.create(PROJECT, f"n{i}", CgroupLimits())
            t2 = time.perf_counter()
            bare = bare_create(driver, f"b{i}")
            t3 = time.perf_counter()
            driver.remove(limited)
            t4 = time.perf_counter()
            driver.remove(plain)
            t5 = time.perf_counter()
            for directory in reversed(bare):
                os.rmdir(directory)
            t6 = time.perf_counter()
            for key, seconds in (
                ("create", t1 - t0),
                ("create0", t2 - t1),
                ("bare", t3 - t2),
                ("remove", t4 - t3),
                ("bare_rm", t6 - t5),
            ):
                results[key].append(seconds * 1e3)
        for i in range(args.attach_runs):
            handle = driver.create(PROJECT, f"a{i}", CgroupLimits())
            time.sleep(0.02)  # let the previous migration's RCU grace period pass, as between real starts
            extra["parent"].append(attach_by_parent(handle))
            time.sleep(0.02)
            extra["self"].append(attach_by_self(handle))
            driver.remove(handle)
        handle = driver.create(PROJECT, "idle", CgroupLimits())
        sleeper = os.fork()
        if sleeper == 0:
            time.sleep(60)
            os._exit(0)
        driver.add_process(handle, sleeper)
        for _ in range(args.attach_runs):
            extra["freeze"].append(timed(lambda: (driver.freeze(handle), driver.thaw(handle))))
            extra["stats"].append(timed(lambda: driver.stats(handle)))
        driver.remove(handle, kill=True)
        os.waitpid(sleeper, 0)
    finally:
        for hierarchy in driver.layout.hierarchies:
            project_dir = hierarchy.own_dir / prefix / PROJECT
            if project_dir.exists():
                for child in project_dir.iterdir():
                    if child.is_dir():
                        os.rmdir(child)
        driver.remove_project(PROJECT)

    floor_create = statistics.median(results["bare"])
    floor_remove = statistics.median(results["bare_rm"])
    print(
        f"cgroup v{driver.version}, {len(driver.layout.hierarchies)} hierarchies, kernel {os.uname().release}\n"
    )
    print("| operation | runs | median ms | min ms | max ms | vs bare os |")
    print("|---|---|---|---|---|---|")
    print(row("create, memory+cpus+pids+default devices", results["create"], floor_create))
    print(row("create, no limits (default devices only)", results["create0"], None))
    print(row("bare os: mkdir + same writes (floor)", results["bare"], floor_create))
    print(row("remove (empty)", results["remove"], floor_remove))
    print(row("bare os: rmdir (floor)", results["bare_rm"], floor_remove))
    floor_attach = statistics.median(extra["self"])
    print(row("join: parent writes pid to cgroup.procs", extra["parent"], floor_attach))
    print(row("join: child writes 0 to its join_files", extra["self"], floor_attach))
    print(row("freeze + thaw, one idle process", extra["freeze"], None))
    print(row("stats read", extra["stats"], None))


if __name__ == "__main__":
    main()
