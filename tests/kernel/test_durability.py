"""A supervisor killed with SIGKILL loses nothing: output, exit codes, containers.

Through the CLI on the real kernel: the fork server outlives the supervisor and keeps the read
ends of the containers' output pipes, so a container that writes continuously keeps running and
every line reaches its log once the next supervisor drains the pipes; exit codes of containers
that end meanwhile are kept; ``exec`` works in the taken-over containers; and an ``up`` killed in
the middle (``ORC_TEST_KILL_AFTER_ACTIONS``) is finished by the next ``up`` without duplicates.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.orc_cli import (
    BUSYBOX_STACK,
    Orc,
    busybox_stack,
    cgroup_dirs,
    free_port,
    orc_project,
    wait_until,
)

pytestmark = pytest.mark.kernel

# `$$` is Compose's escape for a literal `$`.
TALKER = 'i=0; while true; do i=$$((i+1)); echo "line $$i"; sleep 0.02; done'

COMPOSE = (
    BUSYBOX_STACK
    + """  talker:
    <<: *busybox
    command: ["sh", "-c", '{talker}']
  quitter:
    <<: *busybox
    command: ["sh", "-c", "sleep 1; echo bye; exit 7"]
  a:
    <<: *busybox
    command: ["sleep", "100000"]
    depends_on: [talker]
  b:
    <<: *busybox
    command: ["sleep", "100000"]
    depends_on: [a]
"""
)


@pytest.fixture
def orc(tmp_path: Path, busybox_rootfs: Path, unique_name: str) -> Iterator[Orc]:
    compose = COMPOSE.format(project=unique_name, rootfs=busybox_rootfs, talker=TALKER)
    with orc_project(tmp_path, unique_name, compose) as orc:
        yield orc


def supervisor_pid(orc: Orc, project: str) -> int:
    record = json.loads((orc.root / "run" / project / "project.json").read_text())
    return int(record["supervisor_pid"])


def talker_numbers(orc: Orc) -> list[int]:
    text = orc("logs", "--no-log-prefix", "talker").stdout
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("line ")]


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    wait_until(condition, timeout=timeout, interval=0.1, failure=lambda: f"timed out waiting for {condition}")


def not_running(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet (the supervisor is double-forked)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def rows(orc: Orc) -> list[dict[str, Any]]:
    return orc.ps()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_supervisor_killed_while_running(orc: Orc, unique_name: str, how: signal.Signals) -> None:
    """SIGKILL (or SIGTERM) the supervisor of a running project: the talker keeps writing (no
    SIGPIPE), the quitter ends meanwhile; the next supervisor reports exit code 7, drains every
    buffered line in order, `exec` works in the taken-over talker and `logs -f` follows across
    the restart. A supervisor leaving on SIGTERM hands the containers on the same way."""
    orc("up", "-d")
    wait_for(lambda: len(talker_numbers(orc)) >= 5)
    follower = orc.popen(
        "logs",
        "-f",
        "--no-log-prefix",
        "talker",
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = supervisor_pid(orc, unique_name)
        os.kill(first, how)
        wait_for(lambda: not_running(first))
        talker = json.loads(
            (orc.root / "run" / unique_name / "containers" / f"{unique_name}-talker-1.json").read_text()
        )
        time.sleep(2.0)  # the quitter exits, the talker fills its pipe with ~100 lines meanwhile
        os.kill(talker["pid"], 0)  # alive without a supervisor

        orc("up", "-d", "talker")  # a new supervisor takes over; quitter is not started again
        assert supervisor_pid(orc, unique_name) != first
        by_service = {r["Service"]: r for r in rows(orc)}
        assert (by_service["quitter"]["State"], by_service["quitter"]["ExitCode"]) == ("exited", 7)
        assert by_service["talker"]["State"] == "running"
        assert orc("logs", "--no-log-prefix", "quitter").stdout == "bye\n"

        numbers = talker_numbers(orc)
        assert len(numbers) > 60, "lines written while no supervisor ran are missing"
        assert numbers == list(range(1, len(numbers) + 1)), "a line was lost or reordered"
        assert orc("exec", "talker", "echo", "inside").stdout == "inside\n"

        # The follower started before the kill keeps following the same file afterwards.
        target = numbers[-1] + 20
        assert follower.stdout is not None
        seen = []
        deadline = time.monotonic() + 15
        for line in follower.stdout:
            seen.append(int(line.split()[1]))
            if seen[-1] >= target or time.monotonic() > deadline:
                break
        assert seen[-1] >= target
        assert seen == list(range(1, len(seen) + 1))
    finally:
        follower.kill()
        follower.wait()
    orc("down", "-t", "1")
    assert cgroup_dirs(unique_name) == []


def test_killed_in_the_middle_of_up_then_converges(orc: Orc, unique_name: str) -> None:
    """`up` whose supervisor dies after four actions: the next `up` finishes the plan with one
    container per service, keeps the ones already running (same pid) and their logs."""
    orc.env["ORC_TEST_KILL_AFTER_ACTIONS"] = "4"
    failed = orc("up", "-d", check=False)
    del orc.env["ORC_TEST_KILL_AFTER_ACTIONS"]
    assert failed.returncode != 0, failed.stderr
    first = supervisor_pid(orc, unique_name)
    wait_for(lambda: not_running(first))
    before = {r["Name"]: r for r in rows(orc)}
    assert len(before) < 4 or any(r["State"] != "running" for r in before.values())
    running_before = {
        name: json.loads((orc.root / "run" / unique_name / "containers" / f"{name}.json").read_text())["pid"]
        for name, r in before.items()
        if r["State"] == "running"
    }

    orc("up", "-d")
    after = rows(orc)
    assert sorted(r["Service"] for r in after) == ["a", "b", "quitter", "talker"]
    assert sorted(r["Name"] for r in after) == sorted(
        f"{unique_name}-{s}-1" for s in ("a", "b", "quitter", "talker")
    )
    for name, pid in running_before.items():
        record = json.loads((orc.root / "run" / unique_name / "containers" / f"{name}.json").read_text())
        assert record["pid"] == pid, f"{name} was started again"
    wait_for(lambda: len(talker_numbers(orc)) >= 10)
    numbers = talker_numbers(orc)
    assert numbers == list(range(1, len(numbers) + 1))
    orc("down", "-t", "1")
    assert cgroup_dirs(unique_name) == []


def fork_server_pid(orc: Orc) -> int:
    """The fork server of this test's root (not one of its blank inits, which are its children)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if b"orchestrator.runtime.process.forkserver" in cmdline and str(orc.root).encode() in b" ".join(
            cmdline
        ):
            found[int(entry.name)] = parent
    servers = [pid for pid, parent in found.items() if parent not in found]
    assert len(servers) == 1, found
    return servers[0]


def test_fork_server_killed_too(orc: Orc, unique_name: str) -> None:
    """Supervisor and fork server both SIGKILLed: the containers run on; the next supervisor
    adopts them by pid (start time checked): `exec` works, `stop` works, output written after
    the takeover is logged again, and the exit code is the one part that is lost (255)."""
    orc("up", "-d", "talker")
    wait_for(lambda: len(talker_numbers(orc)) >= 5)
    server = fork_server_pid(orc)
    os.kill(supervisor_pid(orc, unique_name), signal.SIGKILL)
    os.kill(server, signal.SIGKILL)
    wait_for(lambda: not_running(server))
    assert orc("exec", "talker", "echo", "adopted").stdout == "adopted\n"
    row = rows(orc)[0]
    assert row["State"] == "running"
    orc("stop", "-t", "1", "talker")
    row = rows(orc)[0]
    assert (row["State"], row["ExitCode"]) == ("exited", 137)  # SIGKILLed by us after the grace
    orc("down", "-t", "1")
    assert cgroup_dirs(unique_name) == []


def test_fork_server_killed_alone(orc: Orc, unique_name: str) -> None:
    """Only the fork server SIGKILLed: the running supervisor notices that it lost track of
    its containers (their exits would go unseen), and `down` still stops and removes them."""
    orc("up", "-d", "talker")
    wait_for(lambda: len(talker_numbers(orc)) >= 3)
    init = json.loads(
        (orc.root / "run" / unique_name / "containers" / f"{unique_name}-talker-1.json").read_text()
    )["pid"]
    server = fork_server_pid(orc)
    os.kill(server, signal.SIGKILL)
    wait_for(lambda: not_running(server))
    orc("down", "-t", "1")
    assert not_running(init)
    assert cgroup_dirs(unique_name) == []


def test_running_containers_hold_no_supervisor_threads(
    tmp_path: Path, busybox_rootfs: Path, unique_name: str
) -> None:
    """A container's exit is awaited on its pidfd in the event loop, not in a thread of its own:
    the supervisor of 24 running containers has fewer threads than containers (the worker
    threads of `up`'s burst are bounded by its concurrency, not by the number of containers)."""
    services = "".join(f"  s{i}:\n    <<: *busybox\n    command: [sleep, '100000']\n" for i in range(24))
    with orc_project(tmp_path, unique_name, busybox_stack(unique_name, busybox_rootfs) + services) as orc:
        orc("up", "-d")
        assert len(rows(orc)) == 24
        threads = len(os.listdir(f"/proc/{supervisor_pid(orc, unique_name)}/task"))
        assert threads < 24


def test_a_serving_supervisor_has_not_loaded_openssl(
    tmp_path: Path, busybox_rootfs: Path, unique_name: str
) -> None:
    """The supervisor serves its control socket, the network's DNS and a published port without
    TLS, so it runs without OpenSSL (~4-6 MiB of its memory; runtime.launch); nor does it load
    shutil's compressors."""
    port = free_port()
    services = (
        "  web:\n    <<: *busybox\n    command: [httpd, -f, -p, '8080', -h, /]\n"
        f"    ports: ['127.0.0.1:{port}:8080']\n"
        "  client:\n    <<: *busybox\n    command: [sleep, '100000']\n"
    )
    with orc_project(tmp_path, unique_name, busybox_stack(unique_name, busybox_rootfs) + services) as orc:
        orc("up", "-d")
        looked_up = orc("exec", "-T", "client", "nslookup", "web")
        assert "Address" in looked_up.stdout.split("web", 1)[-1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.")
        maps = Path(f"/proc/{supervisor_pid(orc, unique_name)}/maps").read_text()
        assert [line for line in maps.splitlines() if "libssl" in line or "_ssl." in line] == []
        assert [line for line in maps.splitlines() if "_bz2." in line or "_lzma." in line] == []
