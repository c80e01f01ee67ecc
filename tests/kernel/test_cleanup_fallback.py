"""The tests' own safety net: when ``down`` cannot run (its supervisor and fork server are gone
or hung), :func:`tests.support.orc_cli.clean_up`'s fallback still removes the containers'
processes, the mounts below the root, the bridge, its firewall rules and the cgroups."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import orc_cli
from tests.support.orc_cli import Orc, busybox_stack, cgroup_dirs

pytestmark = pytest.mark.kernel

SERVICES = """  a:
    <<: *busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
"""


def _firewall_rules() -> str:
    """``iptables-save`` (empty without iptables: orc then adds no rules either)."""
    if shutil.which("iptables-save") is None:
        return ""
    return subprocess.run(["iptables-save"], capture_output=True, text=True).stdout


def _mounts_below(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.split()[4] for line in mountinfo if line.split()[4].startswith(f"{root}/")]


def test_fallback_removes_what_a_dead_supervisor_left(
    tmp_path: Path, busybox_rootfs: Path, unique_name: str
) -> None:
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    (project_dir / "compose.yaml").write_text(busybox_stack(unique_name, busybox_rootfs) + SERVICES)
    orc = Orc(tmp_path / "root", project_dir, unique_name)
    try:
        orc("up", "-d")
        networks = json.loads((orc.state_dir / "project.json").read_text())["networks"]
        bridge = networks[0]["driver_name"]
        assert os.path.exists(f"/sys/class/net/{bridge}")
        assert _mounts_below(orc.root)
        # the shim exists only where the FORWARD policy drops (a host with Docker, this VM)
        assert (f"orc:{bridge}" in _firewall_rules()) == (":FORWARD DROP" in _firewall_rules())
        assert _nft_table_exists(bridge)
        members = [
            int(p)
            for d in cgroup_dirs(unique_name)
            if os.path.exists(f"{d}/cgroup.procs")
            for p in Path(f"{d}/cgroup.procs").read_text().split()
        ]
        assert members

        # Nobody is left to run `down`: the supervisor and the fork server die with SIGKILL.
        orc_cli._kill_orc_processes(orc)
        orc_cli._kill_cgroup_members(unique_name)
        orc_cli._unmount_below(orc.root)
        orc_cli._remove_recorded_bridges(orc)

        assert _mounts_below(orc.root) == []
        assert not os.path.exists(f"/sys/class/net/{bridge}")
        assert f"orc:{bridge}" not in _firewall_rules()
        assert not _nft_table_exists(bridge)
        for pid in members:
            assert (
                not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
            )
    finally:
        # A fresh `down` still finds the project's record: it must cope with what is gone.
        orc_cli.clean_up(orc)
    assert cgroup_dirs(unique_name) == []
    assert _mounts_below(orc.root) == []


def test_a_hung_down_is_reported_after_everything_is_removed(
    tmp_path: Path, busybox_rootfs: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    (project_dir / "compose.yaml").write_text(busybox_stack(unique_name, busybox_rootfs) + SERVICES)
    orc = Orc(tmp_path / "root", project_dir, unique_name)
    orc("up", "-d")
    bridge = json.loads((orc.state_dir / "project.json").read_text())["networks"][0]["driver_name"]
    supervisor = json.loads((orc.state_dir / "project.json").read_text())["supervisor_pid"]
    os.kill(int(supervisor), signal.SIGSTOP)  # `down` now waits for an answer that never comes
    real_run_orc = orc_cli.run_orc

    def impatient(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        kwargs["timeout"] = min(float(kwargs.get("timeout", 120)), 5.0)  # type: ignore[arg-type]
        return real_run_orc(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(orc_cli, "run_orc", impatient)
    with pytest.raises(subprocess.TimeoutExpired):
        orc_cli.clean_up(orc)
    assert cgroup_dirs(unique_name) == []
    assert _mounts_below(orc.root) == []
    assert not os.path.exists(f"/sys/class/net/{bridge}")
    assert f"orc:{bridge}" not in _firewall_rules()


def _nft_table_exists(bridge: str) -> bool:
    from orchestrator.runtime.network.naming import nft_table_name

    listed = subprocess.run(["nft", "list", "table", "inet", nft_table_name(bridge)], capture_output=True)
    return listed.returncode == 0
