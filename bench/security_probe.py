"""The isolation probe (tests/kernel/probe/probe.c) under orc and under ``docker run``, side by side.

    .venv/bin/python bench/security_probe.py

Run as root. Compiles the probe statically, runs it as PID 1 of an orc container (busybox overlay
rootfs, cgroups from the cgroup driver with Docker's device list, Docker's default capabilities
and seccomp profile) and, when Docker works and has ``busybox:local``, as PID 1 of
``docker run --rm`` with the same arguments. Prints a markdown table: check, expected, orc,
docker, and whether each matches. Everything it makes is removed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.runtime.cgroups import CgroupLimits, DriverOptions, open_driver
from orchestrator.runtime.process.runtime import ForkServerRuntime
from orchestrator.runtime.process.spec import BindMount, ContainerSpec, OverlayRootfs, ProcessSpec
from tests.kernel.probe.harness import EXPECTED, build_probe, mismatches, parse, probe_args
from tests.support.rootfs import build_busybox_rootfs


def run_orc(work: Path, probe: Path, args: list[str]) -> dict[str, str]:
    prefix = "orcprobe" + uuid.uuid4().hex[:6]
    driver = open_driver(DriverOptions(prefix=prefix))
    rootfs = build_busybox_rootfs(work / "rootfs")
    (work / "upper").mkdir()
    (work / "work").mkdir()
    handle = driver.create("probe", "c", CgroupLimits())
    runtime = ForkServerRuntime(work / "state")
    try:
        spec = ContainerSpec(
            id="probe",
            rootfs=OverlayRootfs((str(rootfs),), str(work / "upper"), str(work / "work")),
            process=ProcessSpec(args=("/probe", *args)),
            mounts=(BindMount(str(probe), "/probe", read_only=True),),
            cgroup_dirs=tuple(str(d) for d in handle.directories),
            log_path=str(work / "orc.log"),
        )
        runtime.create(spec)
        runtime.start(spec.id)
        runtime.wait(spec.id, timeout=30)
        runtime.delete(spec.id, force=True)
    finally:
        runtime.close()
        driver.remove(handle, kill=True)
        driver.remove_project("probe")
    return parse((work / "orc.log").read_text())


def run_docker(probe: Path, args: list[str]) -> dict[str, str] | None:
    if shutil.which("docker") is None:
        return None
    if not subprocess.run(
        ["docker", "images", "-q", "busybox:local"], capture_output=True, text=True
    ).stdout.strip():
        return None
    result = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{probe}:/probe:ro", "busybox:local", "/probe", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return parse(result.stdout)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="orcprobe"))
    try:
        probe = build_probe(work / "probe")
        marker = work / "host-marker"
        marker.touch()
        args = probe_args(marker)
        orc = run_orc(work, probe, args)
        docker = run_docker(probe, args)
    finally:
        subprocess.run(["umount", "-R", str(work)], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    keys = ["pid", "processes", "max_pid", *EXPECTED.keys(), "no_new_privs"]
    print("| check | expected | orc | docker | orc = docker |")
    print("|---|---|---|---|---|")
    for key in keys:
        want = EXPECTED.get(key, "")
        mine = orc.get(key, "–")
        theirs = docker.get(key, "–") if docker is not None else "n/a"
        same = "yes" if docker is not None and mine == theirs else ("n/a" if docker is None else "NO")
        print(f"| {key} | {want} | {mine} | {theirs} | {same} |")
    print()
    print(f"orc mismatches vs expected: {mismatches(orc) or 'none'}")
    if docker is not None:
        print(f"docker mismatches vs expected: {mismatches(docker) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
