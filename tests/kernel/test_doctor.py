"""``orc doctor`` on this machine: the real checks agree with what we know of the host.

Known truths of the CI VMs: root, cgroup v1 with a hybrid (controller-less) v2 mount, overlayfs,
bridges and veths, libseccomp, tini-static and busybox-static installed. The sandbox probe must
leave no mount, link, scratch directory or probe cgroup behind (the conftest fixture checks
links and mounts; this file checks the rest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.runtime.cgroups import DriverOptions, open_driver
from orchestrator.runtime.doctor import DoctorOptions, LocalHost, Status, diagnose, exit_code

pytestmark = pytest.mark.kernel


def _doctor_objects_left() -> list[str]:
    """Links and mounts the sandbox probe made, seen from the host (it must see none)."""
    links = [name for name in os.listdir("/sys/class/net") if name.startswith("orcdoctor")]
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if "orc-doctor-" in line]
    return links + mounts


def _probe_cgroups_left() -> list[Path]:
    layout = open_driver(DriverOptions()).layout
    return [p for h in layout.hierarchies for p in h.own_dir.glob("orc-doctor-*")]


def test_doctor_reports_this_hosts_known_truths(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    results = {
        r.name: r for r in diagnose(LocalHost(), DoctorOptions(run_root=tmp_path / "run", lib_root=lib))
    }

    assert results["root"].status is Status.OK
    assert results["namespaces"].status is Status.OK
    cgroups = results["cgroups"]
    assert cgroups.status is Status.OK, cgroups
    assert cgroups.summary.startswith("v1 (hybrid, driven as v1)")
    for controller in ("cpu", "memory", "pids", "freezer", "devices"):
        assert controller in cgroups.summary.split(": ", 1)[1].split()
    overlay = results["overlayfs"]
    assert overlay.status is Status.OK, overlay
    assert overlay.summary.endswith(f"whiteouts work on {lib}")
    assert results["bridge"].status is Status.OK, results["bridge"]
    assert results["seccomp"].status is Status.OK, results["seccomp"]
    assert results["nftables"].status is Status.OK, results["nftables"]
    assert results["subnets"].status is Status.OK, results["subnets"]
    assert results["tini"].status is Status.OK and "(static)" in results["tini"].summary
    assert results["busybox"].status is Status.OK
    assert results["disk lib"].summary.endswith(f"under {lib}")
    assert results["registry"].status is Status.SKIP
    assert exit_code(list(results.values())) == 0

    assert list(lib.iterdir()) == []  # the scratch directory is gone
    assert _probe_cgroups_left() == []
    assert _doctor_objects_left() == []


def test_cli_json_report_on_this_host(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--root", str(tmp_path), "doctor", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["root"] == "ok" and statuses["overlayfs"] == "ok" and statuses["bridge"] == "ok"
    assert not [name for name, status in statuses.items() if status == "fail"]
    assert list(tmp_path.iterdir()) == []  # doctor creates no state root
