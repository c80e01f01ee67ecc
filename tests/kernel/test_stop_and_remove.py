"""Stops and removes through the CLI on the real kernel: a stop waits for the exit in the
supervisor's event loop (``reconciler.adapter.KernelRuntime._stop_known``), escalating to
SIGKILL after the grace period, and ``down`` lets each removed container's network namespace go
before its cleanup waits for one of the cleaning slots (``_CLEANING_AT_ONCE``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.support.orc_cli import busybox_stack, cgroup_dirs, orc_project

pytestmark = pytest.mark.kernel

SERVICES = """  polite:
    <<: *busybox
    command: ["sh", "-c", "trap 'exit 3' TERM; sleep 100000 & wait"]
  stubborn:
    <<: *busybox
    command: ["sh", "-c", "trap '' TERM; sleep 100000 & wait"]
"""


def _sleepers(count: int) -> str:
    """``count`` services ``c0``... that sleep until a SIGTERM ends them."""
    return "".join(
        f"""  c{i}:
    <<: *busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
"""
        for i in range(count)
    )


def _state(orc_rows: str, service: str) -> tuple[str, int]:
    row = next(json.loads(line) for line in orc_rows.splitlines() if json.loads(line)["Service"] == service)
    return row["State"], row["ExitCode"]


def test_a_stop_is_prompt_for_a_process_that_exits_and_kills_one_that_ignores_it(
    tmp_path: Path, busybox_rootfs: Path, unique_name: str
) -> None:
    with orc_project(tmp_path, unique_name, busybox_stack(unique_name, busybox_rootfs) + SERVICES) as orc:
        orc("up", "-d")
        began = time.monotonic()
        orc("stop", "-t", "5", "polite")
        assert time.monotonic() - began < 3.0  # its exit ended the wait, not the grace period
        assert _state(orc("ps", "-a", "--format", "json").stdout, "polite") == ("exited", 3)

        began = time.monotonic()
        orc("stop", "-t", "1", "stubborn")
        assert time.monotonic() - began >= 1.0  # the whole grace period, then SIGKILL
        assert _state(orc("ps", "-a", "--format", "json").stdout, "stubborn") == ("exited", 137)

        orc("start", "polite", "stubborn")
        assert {json.loads(line)["State"] for line in orc("ps", "--format", "json").stdout.splitlines()} == {
            "running"
        }


def test_down_of_many_containers_removes_each_namespace_directory_and_cgroup(
    tmp_path: Path, busybox_rootfs: Path, unique_name: str
) -> None:
    many = _sleepers(6)
    with orc_project(tmp_path, unique_name, busybox_stack(unique_name, busybox_rootfs) + many) as orc:
        orc("up", "-d")
        netns = orc.state_dir / "netns"
        assert len(os.listdir(netns)) == 6
        containers = tmp_path / "root" / "lib" / "containers"
        assert len([d for d in os.listdir(containers) if not d.startswith(".")]) == 6
        orc("down")
        assert not netns.exists() or os.listdir(netns) == []
        # Nothing left, not even a removed container's directory set aside for its deletion.
        assert [d for d in os.listdir(containers) if not d.startswith(".") or ".removed." in d] == []
        assert cgroup_dirs(unique_name) == []


def test_an_up_after_a_down_reuses_the_files_of_records_specs_and_namespaces(
    tmp_path: Path, busybox_rootfs: Path, unique_name: str
) -> None:
    """Each container's record (and its spare), spec file and namespace mount point go to the
    run root's inode pool at ``down`` and come back at the next ``up``: on ext4 without a
    journal every new inode scanned past the ones freed in the last minutes nearby."""
    services = _sleepers(3)
    with orc_project(tmp_path, unique_name, busybox_stack(unique_name, busybox_rootfs) + services) as orc:
        pool = tmp_path / "root" / "run" / ".spare-inodes"
        orc("up", "-d")
        orc("down")
        pooled = {p.stat().st_ino for p in pool.iterdir()}
        assert len(pooled) >= 12  # per container: record, its spare, spec, namespace mount point
        orc("up", "-d")
        files = [*(orc.state_dir / "containers").iterdir(), *(orc.state_dir / "process").glob("*.spec")]
        assert len(files) == 9  # three records, their spares, three specs
        assert {p.stat().st_ino for p in files} <= pooled
        # The mount points show their namespaces' inodes: they came from the pool too.
        assert len(os.listdir(orc.state_dir / "netns")) == 3
        assert len(os.listdir(pool)) == len(pooled) - 12
        # Logs live in each container's directory (spread over the filesystem), not one shared one.
        containers = tmp_path / "root" / "lib" / "containers"
        for record in (orc.state_dir / "containers").glob("*.json"):
            name = record.stem
            assert json.loads(record.read_text())["log_path"] == str(containers / name / f"{name}.log")
            assert (containers / name / f"{name}.log").is_file()
        orc("down")
