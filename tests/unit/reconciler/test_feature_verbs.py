"""``orc stats`` rows, ``orc wait``'s stop detection and ``orc cp``'s path rules, without root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from orchestrator.cli.verb_cp import container_path, copy, split_container_path
from orchestrator.cli.verb_stats import render
from orchestrator.cli.verb_wait import stopped_containers
from orchestrator.errors import NotFoundError, PermanentError, UsageError
from orchestrator.reconciler.stats import (
    ContainerUsage,
    bytes_size,
    container_stats,
    host_memory_bytes,
    human_size,
    usage_row,
)
from orchestrator.state.records import ContainerRecord

MiB = 1024 * 1024


def record(name: str = "demo-web-1") -> ContainerRecord:
    return ContainerRecord(
        project="demo", name=name, service="web", number=1, container_id="ab" * 32, config_hash="h"
    )


def test_units_as_docker_prints_them() -> None:
    assert human_size(0) == "0B"
    assert human_size(1234) == "1.234kB"
    assert human_size(5_500_000) == "5.5MB"
    assert bytes_size(1536 * 1024) == "1.5MiB"
    assert bytes_size(64 * MiB) == "64MiB"
    assert bytes_size(2 * 1024**3) == "2GiB"


def test_usage_row() -> None:
    before = ContainerUsage(cpu_ns=1_000_000_000)
    after = ContainerUsage(
        cpu_ns=1_250_000_000,
        memory_usage=12 * MiB,
        memory_inactive_file=4 * MiB,
        memory_limit=64 * MiB,
        pids=3,
        net_rx=1234,
        net_tx=648,
        block_read=0,
        block_write=4096,
    )
    row = usage_row(record(), before, after, 0.5, host_memory=2048 * MiB)
    assert row == {
        "BlockIO": "0B / 4.096kB",
        "CPUPerc": "50.00%",
        "Container": "ab" * 32,
        "ID": "abababababab",
        "MemPerc": "12.50%",
        "MemUsage": "8MiB / 64MiB",
        "Name": "demo-web-1",
        "NetIO": "1.234kB / 648B",
        "PIDs": "3",
    }
    unlimited = usage_row(record(), before, ContainerUsage(memory_limit=1 << 62), 0.5, host_memory=2048 * MiB)
    assert unlimited["MemUsage"] == "0B / 2GiB" and unlimited["CPUPerc"] == "0.00%"


def test_host_memory() -> None:
    assert host_memory_bytes("MemTotal:        2038120 kB\nMemFree: 1 kB\n") == 2038120 * 1024
    assert host_memory_bytes("") == 0


def test_container_stats_two_readings_and_a_container_that_stopped() -> None:
    readings = {"a": [ContainerUsage(cpu_ns=0), ContainerUsage(cpu_ns=100_000_000)], "b": [ContainerUsage()]}
    now = [10.0]

    async def read(r: ContainerRecord) -> ContainerUsage:
        queue = readings[r.name]
        if not queue:
            raise NotFoundError(f"{r.name} stopped")
        return queue.pop(0)

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def main() -> list[dict[str, str]]:
        return await container_stats(
            read, [record("a"), record("b")], 1024 * MiB, interval=1.0, clock=lambda: now[0], sleep=sleep
        )

    rows = anyio.run(main)
    assert [(r["Name"], r["CPUPerc"]) for r in rows] == [("a", "10.00%")]


def test_render_table_and_json() -> None:
    row = usage_row(record(), ContainerUsage(), ContainerUsage(pids=1), 1.0, MiB)
    table = render([row], "table").splitlines()
    assert table[0].split("   ")[0] == "CONTAINER ID" and "PIDS" in table[0]
    assert table[1].startswith("abababababab   demo-web-1")
    assert render([row], "json").count("\n") == 1 and '"PIDs":"1"' in render([row], "json")


@dataclass
class Rec:
    name: str
    service: str
    container_id: str = ""
    status: str = "running"
    pid: int | None = 10
    pid_start_time: int | None = 1
    exit_code: int | None = None
    one_off: bool = False


def test_wait_reports_in_stop_order_including_a_quick_restart() -> None:
    a, b, c = Rec("p-a-1", "a"), Rec("p-b-1", "b", pid=11), Rec("p-c-1", "c")
    a.container_id, b.container_id = "id-a", "id-b"
    states = [[a, b, c], [a, b, c]]
    states.append([Rec("p-a-1", "a", pid=12, exit_code=3), b, c])  # restarted by its policy
    states.append([Rec("p-a-1", "a", pid=12), Rec("p-b-1", "b", status="exited", exit_code=0), c])
    calls = iter(states + [states[-1]] * 10)
    sleeps: list[float] = []
    result = list(stopped_containers(lambda: next(calls), ["a", "b"], sleeps.append))
    assert result == [("id-a", 3), ("id-b", 0)]
    assert sleeps  # it polled


def test_wait_unknown_service_and_removed_container() -> None:
    with pytest.raises(UsageError, match="no containers for service"):
        list(stopped_containers(lambda: [Rec("p-a-1", "a")], ["nope"], lambda _: None))
    lists = iter([[Rec("p-a-1", "a")], [], []])
    assert list(stopped_containers(lambda: next(lists), ["a"], lambda _: None)) == [("", 0)]


def test_split_container_path() -> None:
    assert split_container_path("web:/etc/hosts") == ("web", "/etc/hosts")
    assert split_container_path("./a:b") == (None, "./a:b")
    assert split_container_path("/abs:x") == (None, "/abs:x")
    assert split_container_path("plain") == (None, "plain")
    assert split_container_path("dir/x:y") == (None, "dir/x:y")


def test_container_path_keeps_symlinks_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("inside")
    os.symlink("/etc/passwd", root / "link")
    os.symlink("../../../../..", root / "up")
    assert container_path(str(root), "/link") == str(root / "etc" / "passwd")
    assert container_path(str(root), "up/etc/passwd") == str(root / "etc" / "passwd")


def test_copy_layout_rules(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "leaf").write_text("x")
    os.symlink("/nowhere", tree / "dangling")
    existing = tmp_path / "existing"
    existing.mkdir()
    assert copy(str(tree), str(existing)) == str(existing / "tree")  # into an existing directory
    assert (existing / "tree" / "sub" / "leaf").read_text() == "x"
    assert os.readlink(existing / "tree" / "dangling") == "/nowhere"  # copied as a link
    assert copy(str(tree), str(tmp_path / "new")) == str(tmp_path / "new")  # created
    contents = tmp_path / "contents"
    contents.mkdir()
    copy(str(tree) + "/.", str(contents), contents_only=True)
    assert (contents / "sub" / "leaf").exists()
    file = tree / "sub" / "leaf"
    assert copy(str(file), str(existing)) == str(existing / "leaf")
    assert copy(str(file), str(tmp_path / "renamed")) == str(tmp_path / "renamed")
    with pytest.raises(NotFoundError):
        copy(str(file), str(tmp_path / "missing-dir" / "x"))
    with pytest.raises(NotFoundError):
        copy(str(tmp_path / "absent"), str(existing))
    with pytest.raises(PermanentError, match="non-directory"):
        copy(str(tree), str(tmp_path / "renamed"))
