"""Container start and exec latency of orc's process runtime, side by side with runc and docker.

    .venv/bin/python bench/container_start.py [--runs 30] [--no-peers]

Run as root. Inside one running orc process (fork server already up, seccomp program cached):

* start→exec: ``create`` + ``start`` of a busybox container (with the fork server's blank inits,
  which it prepares while idle, and with them turned off so every init is forked on demand) (overlay rootfs, cgroups from the
  cgroup driver with memory/cpu/pids limits and Docker's device list, Docker's default seccomp
  profile and capabilities); ``start`` returns when PID 1 has exec'd. Cgroup creation is timed
  separately and once more included.
* full run of ``true``: cgroups + create + start + wait for exit + delete — comparable with one
  ``runc run`` (its own create, start, wait, delete) and one ``docker run --rm``.
* exec round trip: ``exec`` of ``true`` into a running container until its exit status is back,
  next to ``runc exec`` and ``docker exec``.
* seccomp: compiling Docker's default profile with libseccomp vs reading the cached program.

Everything lives under a temporary directory and ``<own cgroup>/orcbench<random>``; all is removed
at the end. Prints a markdown table (median, min, max, ratio against orc's number for the row
group).
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.runtime.cgroups import CgroupLimits, DriverOptions, open_driver
from orchestrator.runtime.process.capabilities import DEFAULT_CAPABILITIES
from orchestrator.runtime.process.runtime import ExecSpec, ForkServerRuntime
from orchestrator.runtime.process.seccomp import BpfCache, LibSeccomp, default_profile
from orchestrator.runtime.process.spec import ContainerSpec, OverlayRootfs, ProcessSpec
from tests.support.rootfs import build_busybox_rootfs

LIMITS = CgroupLimits(memory=64 << 20, cpus=0.5, pids_limit=64)
PROJECT = "bench"


def stats(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


class Orc:
    def __init__(self, work: Path, rootfs: Path, prefix: str, blank_inits: int = 2) -> None:
        self.work, self.rootfs = work, rootfs
        self.driver = open_driver(DriverOptions(prefix=prefix))
        self.runtime = ForkServerRuntime(
            work / f"state{blank_inits}", work / "cache", blank_inits=blank_inits
        )
        self.count = 0
        self.name = f"b{blank_inits}-"

    def spec(self, args: tuple[str, ...], cgroup_dirs: tuple[str, ...]) -> ContainerSpec:
        self.count += 1
        cid = f"{self.name}{self.count}"
        upper, workdir = self.work / cid / "upper", self.work / cid / "work"
        upper.mkdir(parents=True)
        workdir.mkdir()
        return ContainerSpec(
            id=cid,
            rootfs=OverlayRootfs((str(self.rootfs),), str(upper), str(workdir)),
            process=ProcessSpec(args=args),
            cgroup_dirs=cgroup_dirs,
        )

    def start_to_exec(self) -> tuple[float, float]:
        """(start→exec ms with cgroups made beforehand, cgroup creation ms)."""
        t0 = time.perf_counter()
        handle = self.driver.create(PROJECT, f"{self.name}{self.count + 1}", LIMITS)
        t1 = time.perf_counter()
        spec = self.spec(("sleep", "30"), tuple(str(d) for d in handle.directories))
        time.sleep(0.05)  # a gap between containers: the fork server prepares a blank init
        t2 = time.perf_counter()
        self.runtime.create(spec)
        self.runtime.start(spec.id)
        t3 = time.perf_counter()
        self.runtime.delete(spec.id, force=True)
        self.driver.remove(handle, kill=True)
        shutil.rmtree(self.work / spec.id, ignore_errors=True)
        return (t3 - t2) * 1e3, (t1 - t0) * 1e3

    def full_run(self) -> float:
        t0 = time.perf_counter()
        handle = self.driver.create(PROJECT, f"{self.name}{self.count + 1}", LIMITS)
        spec = self.spec(("true",), tuple(str(d) for d in handle.directories))
        self.runtime.create(spec)
        self.runtime.start(spec.id)
        status = self.runtime.wait(spec.id, timeout=30)
        self.runtime.delete(spec.id)
        self.driver.remove(handle)
        elapsed = (time.perf_counter() - t0) * 1e3
        assert status is not None and status.code == 0, status
        shutil.rmtree(self.work / spec.id, ignore_errors=True)
        return elapsed

    def exec_round_trips(self, runs: int) -> list[float]:
        handle = self.driver.create(PROJECT, f"{self.name}execbox", LIMITS)
        spec = self.spec(("sleep", "300"), tuple(str(d) for d in handle.directories))
        self.runtime.create(spec)
        self.runtime.start(spec.id)
        samples = []
        try:
            for _ in range(runs):
                t0 = time.perf_counter()
                exec_handle = self.runtime.exec(spec.id, ExecSpec(("true",)))
                status = self.runtime.wait_exec(exec_handle, timeout=30)
                samples.append((time.perf_counter() - t0) * 1e3)
                assert status is not None and status.code == 0
        finally:
            self.runtime.delete(spec.id, force=True)
            self.driver.remove(handle, kill=True)
        return samples

    def close(self) -> None:
        self.runtime.close()
        self.driver.remove_project(PROJECT)


def own_memory_cgroup() -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return path
    return "/"


class Runc:
    """``runc run``/``runc exec`` on an OCI bundle of the same busybox rootfs, its cgroups placed
    below our own (``linux.cgroupsPath``)."""

    def __init__(self, work: Path, rootfs: Path, prefix: str) -> None:
        self.bundle = work / "runc-bundle"
        self.bundle.mkdir()
        shutil.copytree(rootfs, self.bundle / "rootfs", symlinks=True)
        subprocess.run(["runc", "spec"], cwd=self.bundle, check=True)
        config = json.loads((self.bundle / "config.json").read_text())
        config["process"]["terminal"] = False
        config["process"]["args"] = ["true"]
        config["root"]["readonly"] = False
        self.cgroup_base = f"{own_memory_cgroup().rstrip('/')}/{prefix}-runc"
        self.config = config
        self.prefix = prefix
        self.count = 0

    def _write(self, args: list[str], name: str) -> None:
        self.config["process"]["args"] = args
        self.config["linux"]["cgroupsPath"] = f"{self.cgroup_base}/{name}"
        (self.bundle / "config.json").write_text(json.dumps(self.config))

    def full_run(self) -> float:
        self.count += 1
        name = f"{self.prefix}-{self.count}"
        self._write(["true"], name)
        t0 = time.perf_counter()
        subprocess.run(["runc", "run", "-b", str(self.bundle), name], check=True, stdin=subprocess.DEVNULL)
        return (time.perf_counter() - t0) * 1e3

    def exec_round_trips(self, runs: int) -> list[float]:
        name = f"{self.prefix}-exec"
        self._write(["sleep", "300"], name)
        subprocess.run(
            ["runc", "run", "-d", "-b", str(self.bundle), name],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        samples = []
        try:
            for _ in range(runs):
                t0 = time.perf_counter()
                subprocess.run(["runc", "exec", name, "true"], check=True, stdin=subprocess.DEVNULL)
                samples.append((time.perf_counter() - t0) * 1e3)
        finally:
            subprocess.run(["runc", "kill", name, "KILL"], check=False)
            for _ in range(50):
                if subprocess.run(["runc", "delete", name], capture_output=True).returncode == 0:
                    break
                time.sleep(0.05)
        return samples

    def close(self) -> None:
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            directory = Path(str(hierarchy) + self.cgroup_base)
            if directory.is_dir():
                for child in directory.iterdir():
                    if child.is_dir():
                        child.rmdir()
                directory.rmdir()


def docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "docker not installed"
    images = subprocess.run(["docker", "images", "-q", "busybox:local"], capture_output=True, text=True)
    if images.returncode != 0 or not images.stdout.strip():
        return "docker image busybox:local missing"
    return None


class Docker:
    def __init__(self, prefix: str) -> None:
        self.name = f"{prefix}-exec"

    def full_run(self) -> float:
        t0 = time.perf_counter()
        subprocess.run(
            ["docker", "run", "--rm", "busybox:local", "true"], check=True, stdin=subprocess.DEVNULL
        )
        return (time.perf_counter() - t0) * 1e3

    def exec_round_trips(self, runs: int) -> list[float]:
        subprocess.run(
            ["docker", "run", "-d", "--name", self.name, "busybox:local", "sleep", "300"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        samples = []
        try:
            for _ in range(runs):
                t0 = time.perf_counter()
                subprocess.run(["docker", "exec", self.name, "true"], check=True, stdin=subprocess.DEVNULL)
                samples.append((time.perf_counter() - t0) * 1e3)
        finally:
            subprocess.run(["docker", "rm", "-f", self.name], check=False, capture_output=True)
        return samples


def seccomp_rows(work: Path, runs: int) -> tuple[list[float], list[float]]:
    library = LibSeccomp()
    profile = default_profile(DEFAULT_CAPABILITIES)
    compile_samples, cached_samples = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        library.compile(profile)
        compile_samples.append((time.perf_counter() - t0) * 1e3)
    BpfCache(work / "seccomp-bench", library).program(profile)
    for _ in range(runs):
        t0 = time.perf_counter()
        BpfCache(work / "seccomp-bench", library).program(profile)  # a fresh cache reads the file
        cached_samples.append((time.perf_counter() - t0) * 1e3)
    return compile_samples, cached_samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-peers", action="store_true")
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    prefix = "orcbench" + uuid.uuid4().hex[:6]
    work = Path(tempfile.mkdtemp(prefix="orcbench"))
    rows: list[tuple[str, str, int, tuple[float, float, float], float | None]] = []
    orc = runc = None
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        rootfs = build_busybox_rootfs(work / "rootfs")
        on_demand = Orc(work, rootfs, prefix, blank_inits=0)
        try:
            on_demand.full_run()
            forked = [on_demand.start_to_exec()[0] for _ in range(options.runs)]
        finally:
            on_demand.close()
        orc = Orc(work, rootfs, prefix)
        orc.full_run()  # warm: seccomp compiled and cached, project cgroups made
        starts, cgroup_creates = zip(*(orc.start_to_exec() for _ in range(options.runs)), strict=True)
        with_cgroups = [a + b for a, b in zip(starts, cgroup_creates, strict=True)]
        start_median = statistics.median(starts)
        rows.append(
            (
                "start→exec of PID 1",
                "orc create+start (blank init ready)",
                options.runs,
                stats(list(starts)),
                1.0,
            )
        )
        rows.append(
            (
                "start→exec of PID 1",
                "orc create+start (forked on demand)",
                options.runs,
                stats(forked),
                statistics.median(forked) / start_median,
            )
        )
        rows.append(
            (
                "start→exec of PID 1",
                "orc cgroup create (driver)",
                options.runs,
                stats(list(cgroup_creates)),
                None,
            )
        )
        rows.append(
            (
                "start→exec of PID 1",
                "orc cgroups + create + start",
                options.runs,
                stats(with_cgroups),
                statistics.median(with_cgroups) / start_median,
            )
        )
        full = [orc.full_run() for _ in range(options.runs)]
        full_median = statistics.median(full)
        rows.append(("full run of `true`", "orc (cgroups→exit→delete)", options.runs, stats(full), 1.0))
        execs = orc.exec_round_trips(options.runs)
        exec_median = statistics.median(execs)
        rows.append(("exec round trip", "orc exec `true`", options.runs, stats(execs), 1.0))
        if not options.no_peers:
            if shutil.which("runc"):
                runc = Runc(work, rootfs, prefix)
                runc_full = [runc.full_run() for _ in range(options.runs)]
                rows.append(
                    (
                        "full run of `true`",
                        "runc run",
                        options.runs,
                        stats(runc_full),
                        statistics.median(runc_full) / full_median,
                    )
                )
                runc_exec = runc.exec_round_trips(options.runs)
                rows.append(
                    (
                        "exec round trip",
                        "runc exec",
                        options.runs,
                        stats(runc_exec),
                        statistics.median(runc_exec) / exec_median,
                    )
                )
            problem = docker_problem()
            if problem is None:
                docker = Docker(prefix)
                docker.full_run()
                docker_full = [docker.full_run() for _ in range(options.runs)]
                rows.append(
                    (
                        "full run of `true`",
                        "docker run --rm",
                        options.runs,
                        stats(docker_full),
                        statistics.median(docker_full) / full_median,
                    )
                )
                docker_exec = docker.exec_round_trips(options.runs)
                rows.append(
                    (
                        "exec round trip",
                        "docker exec",
                        options.runs,
                        stats(docker_exec),
                        statistics.median(docker_exec) / exec_median,
                    )
                )
            else:
                print(f"<!-- docker skipped: {problem} -->")
        compiled, cached = seccomp_rows(work, options.runs)
        rows.append(
            (
                "seccomp program",
                "libseccomp compile per container",
                options.runs,
                stats(compiled),
                statistics.median(compiled) / statistics.median(cached),
            )
        )
        rows.append(
            ("seccomp program", "cached BPF (fresh cache reads file)", options.runs, stats(cached), 1.0)
        )
    finally:
        if orc is not None:
            orc.close()
        if runc is not None:
            runc.close()
        subprocess.run(["umount", "-R", str(work)], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"kernel {os.uname().release}, {os.cpu_count()} CPUs, busybox overlay rootfs, Docker default caps + seccomp\n"
    )
    print("| what | who | runs | median ms | min ms | max ms | ratio vs orc |")
    print("|---|---|---|---|---|---|---|")
    for group, who, runs, (median, low, high), ratio in rows:
        ratio_text = "–" if ratio is None else f"{ratio:.2f}×"
        print(f"| {group} | {who} | {runs} | {median:.2f} | {low:.2f} | {high:.2f} | {ratio_text} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
