"""The lifecycle verbs' Docker Compose flags on the real kernel, through the CLI.

``run -u -w --entrypoint -v -p --service-ports --name --cap-add --cap-drop -l -i
--env-from-file``, ``up --abort-on-container-exit`` and
``--exit-code-from``, ``ps --status``, and ``--progress json``, each checked on a busybox stack
with its own ``--root``, project name and cgroup prefix (``unique_name``); a finaliser runs
``down`` and kills a surviving supervisor if a test failed half-way.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.orc_cli import BUSYBOX_STACK, Orc, free_port, orc_project, port_stack

pytestmark = pytest.mark.kernel


COMPOSE = (
    BUSYBOX_STACK
    + """  web:
    <<: *busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
    ports: ["127.0.0.1:{port}:80"]
  quick:
    <<: *busybox
    command: ["sh", "-c", "echo quick done; sleep 0.5; exit 3"]
    profiles: [abort]
  slow:
    <<: *busybox
    command: ["sh", "-c", "echo slow up; trap 'exit 7' TERM; sleep 100000 & wait"]
    profiles: [abort]
  needs:
    <<: *busybox
    command: ["sh", "-c", "echo needs up; sleep 3; exit 0"]
    depends_on: [quick]
    profiles: [abort]
"""
)


@pytest.fixture
def stack(tmp_path: Path, busybox_rootfs: Path, unique_name: str) -> Iterator[tuple[Orc, str, int]]:
    with port_stack(
        tmp_path, unique_name, busybox_rootfs, COMPOSE, down=("--profile", "abort", "down", "-t", "1")
    ) as stack:
        yield stack


def test_run_user_workdir_entrypoint_volume_name(stack: tuple[Orc, str, int], tmp_path: Path) -> None:
    orc, project, _ = stack
    shared = tmp_path / "here"
    shared.mkdir()
    (shared / "note").write_text("from the host\n")
    # a project never brought up: run --no-deps creates the network its service is on
    result = orc(
        "-f",
        str(orc.project_dir / "compose.yaml"),
        "run",
        "--rm",
        "--no-deps",
        "-u",
        "1234:5678",
        "-w",
        "/tmp",
        "-v",
        "./note:/mnt/note:ro",
        "--entrypoint",
        "sh -c",
        "--name",
        f"{project}-custom",
        "web",
        "id -u; id -g; pwd; cat /mnt/note; hostname; echo ok > /mnt/note || echo read-only",
        cwd=shared,  # a relative -v source is taken from the current directory
    )
    lines = result.stdout.splitlines()
    assert lines[:4] == ["1234", "5678", "/tmp", "from the host"], result.stdout
    assert "read-only" in lines[-1], result.stdout
    assert (shared / "note").read_text() == "from the host\n"
    state = json.loads((orc.state_dir / "project.json").read_text())
    assert [n["name"] for n in state["networks"]] == [f"{project}_default"], state
    # --rm removed the named container
    assert f"{project}-custom" not in orc("ps", "-a").stdout


def test_up_attach_dependencies_shows_and_watches_the_dependencies(stack: tuple[Orc, str, int]) -> None:
    orc, _, _ = stack
    # Without the flag only `needs` is attached: quick's exit (code 3) ends nothing.
    alone = orc("--profile", "abort", "up", "--abort-on-container-exit", "needs", check=False)
    assert "needs up" in alone.stdout and "quick done" not in alone.stdout, alone.stdout
    assert alone.returncode == 0, alone.stderr
    orc("--profile", "abort", "down", "-t", "1")
    both = orc(
        "--profile", "abort", "up", "--attach-dependencies", "--abort-on-container-exit", "needs", check=False
    )
    assert "quick done" in both.stdout and "needs up" in both.stdout, both.stdout
    assert both.returncode == 3, both.stderr  # quick, now attached, exited first


def _addresses_of(orc: Orc, name: str) -> set[str]:
    """The addresses the project's DNS gives for ``name``, asked from a throwaway one-off."""
    answer = orc("run", "--rm", "--no-deps", "web", "nslookup", name, check=False).stdout
    found, ours = set(), False
    for line in answer.splitlines():  # "Name:\tweb" then "Address: 172.18.0.2", per answer
        if line.startswith("Name:"):
            ours = line.split()[-1] == name
        elif ours and line.startswith("Address"):
            found.add(line.split()[-1])
    return found


def test_run_one_offs_take_the_services_dns_name_only_with_use_aliases(stack: tuple[Orc, str, int]) -> None:
    orc, project, _ = stack
    orc("up", "-d", "web")
    assert len(_addresses_of(orc, "web")) == 1
    orc("run", "-d", "--no-deps", "--name", f"{project}-plain", "web", "sleep", "100000")
    assert len(_addresses_of(orc, "web")) == 1  # the one-off is not a `web` to the others
    assert len(_addresses_of(orc, f"{project}-plain")) == 1  # but has its own name
    orc("run", "-d", "--no-deps", "--use-aliases", "--name", f"{project}-aliased", "web", "sleep", "100000")
    assert len(_addresses_of(orc, "web")) == 2


def _capabilities(status: str) -> int:
    line = next(line for line in status.splitlines() if line.startswith("CapEff:"))
    return int(line.split()[1], 16)


def test_run_cap_add_cap_drop_env_from_file_and_no_interactive(stack: tuple[Orc, str, int]) -> None:
    orc, _, _ = stack
    cap_chown, cap_sys_time = 1 << 0, 1 << 25
    plain = _capabilities(orc("run", "--rm", "--no-deps", "web", "cat", "/proc/self/status").stdout)
    assert plain & cap_chown and not plain & cap_sys_time  # Docker's defaults
    changed = _capabilities(
        orc(
            "run",
            "--rm",
            "--no-deps",
            "--cap-add",
            "SYS_TIME",
            "--cap-drop",
            "CHOWN",
            "-l",
            "a=b",
            "web",
            "cat",
            "/proc/self/status",
        ).stdout
    )
    assert changed == (plain | cap_sys_time) & ~cap_chown
    env_file = orc.project_dir / "one-off.env"
    env_file.write_text("GREETING=from the file\nOTHER=x\n")
    echoed = orc(
        "run",
        "--rm",
        "--no-deps",
        "--env-from-file",
        str(env_file),
        "-e",
        "OTHER=from -e",
        "web",
        "sh",
        "-c",
        'echo "$GREETING/$OTHER"',
    )
    assert echoed.stdout.strip() == "from the file/from -e"
    # stdin reaches the one-off by default (-i), and not with --no-interactive
    for flags, expected in (((), "from stdin\n"), (("--no-interactive",), "")):
        process = orc.popen(
            "run",
            "--rm",
            "--no-deps",
            "-T",
            *flags,
            "web",
            "cat",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = process.communicate("from stdin\n", timeout=60)
        assert (process.returncode, out) == (0, expected), err


def test_run_publish_and_service_ports(stack: tuple[Orc, str, int]) -> None:
    orc, _, port = stack
    other = free_port()
    command = "mkdir -p /www && echo published > /www/index.html; exec httpd -f -p 80 -h /www"
    orc("up", "--no-start")
    orc("run", "-d", "--no-deps", "-p", f"127.0.0.1:{other}:80", "web", "sh", "-c", command)
    assert httpx.get(f"http://127.0.0.1:{other}/", timeout=10).text == "published\n"
    orc("run", "-d", "--no-deps", "--service-ports", "web", "sh", "-c", command)
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text == "published\n"
    refused = orc("run", "--service-ports", "-p", f"{other}:80", "web", "true", check=False)
    assert refused.returncode != 0 and "incompatible" in refused.stderr


def test_up_abort_on_container_exit_and_exit_code_from(stack: tuple[Orc, str, int]) -> None:
    orc = stack[0]
    aborted = orc("--profile", "abort", "up", "--abort-on-container-exit", "quick", "slow", check=False)
    assert aborted.returncode == 3, aborted.stderr  # the first container to exit: quick
    assert "Aborting on container exit..." in aborted.stderr
    assert "quick done" in aborted.stdout and "slow up" in aborted.stdout
    states = {
        row["Service"]: (row["State"], row["ExitCode"])
        for row in map(
            json.loads, orc("--profile", "abort", "ps", "-a", "--format", "json").stdout.splitlines()
        )
    }
    assert states == {"quick": ("exited", 3), "slow": ("exited", 7)}, states

    chosen = orc(
        "--profile",
        "abort",
        "up",
        "--exit-code-from",
        "slow",
        "--no-log-prefix",
        "quick",
        "slow",
        check=False,
    )
    assert chosen.returncode == 7, chosen.stderr  # slow's code once up stopped it
    assert "slow up" in chosen.stdout.splitlines(), chosen.stdout
    assert "Aborting on container exit..." in chosen.stderr
    unknown = orc("up", "--exit-code-from", "nope", check=False)
    assert unknown.returncode != 0 and "no such service: nope" in unknown.stderr

    # --abort-on-container-failure: quick's exit 3 is a failure; --no-attach hides slow's output
    failed = orc(
        "--profile",
        "abort",
        "up",
        "--abort-on-container-failure",
        "--no-attach",
        "slow",
        "quick",
        "slow",
        check=False,
    )
    assert failed.returncode == 3, failed.stderr
    assert "quick done" in failed.stdout and "slow up" not in failed.stdout, failed.stdout
    # --attach: only the named services' output, and only their exits abort (as Compose's event
    # watch covers the attached services alone)
    attached = orc(
        "--profile",
        "abort",
        "up",
        "--abort-on-container-exit",
        "--attach",
        "quick",
        "quick",
        "slow",
        check=False,
    )
    assert attached.returncode == 3, attached.stderr
    assert "quick done" in attached.stdout and "slow up" not in attached.stdout, attached.stdout
    unknown = orc("up", "--no-attach", "nope", check=False)
    assert unknown.returncode != 0 and "no such service: nope" in unknown.stderr


def test_progress_json_and_plain_and_ps_status(stack: tuple[Orc, str, int]) -> None:
    orc, project, _ = stack
    up = orc("--progress", "json", "up", "-d", "web")
    events = [json.loads(line) for line in up.stderr.splitlines() if line.startswith("{")]
    assert {"id": f"Network {project}_default", "status": "Created"} in events, up.stderr
    assert {"id": f"Container {project}-web-1", "status": "Started"} in events, up.stderr
    dry = orc("--dry-run", "down")  # says what down would do, does none of it
    assert f"stop {project}-web-1" in dry.stdout and f"remove-network {project}_default" in dry.stdout, (
        dry.stdout
    )
    assert orc("ps", "--status", "running", "--format", "json").stdout.count('"State":"running"') == 1
    orc("run", "-d", "--no-deps", "--name", f"{project}-gone", "web", "true")
    assert orc("ps", "--status", "running", "--format", "json").stdout.count('"State":"running"') == 1
    assert orc("ps", "--status", "paused").stdout.splitlines()[1:] == []
    stop = orc("--progress", "plain", "stop", "web")
    assert f" Container {project}-web-1  Stopped" in stop.stderr.splitlines(), stop.stderr
    assert "✔" not in stop.stderr
    # Compose's other global flags: --ansi always gives the terminal's progress even into a
    # pipe, --parallel bounds the supervisor's work for this request
    start = orc("--ansi", "always", "--parallel", "1", "start", "web")
    assert f" ✔ Container {project}-web-1  Started" in start.stderr, start.stderr
    orc("--ansi", "never", "stop", "web")
    exited = orc("ps", "--status", "exited", "--format", "json").stdout.splitlines()
    assert {json.loads(line)["Name"] for line in exited} == {f"{project}-web-1", f"{project}-gone"}
    assert orc("--progress", "quiet", "down").stderr == ""


def _supervisors_of(orc: Orc) -> list[str]:
    pattern = rf"orchestrator\.daemon\.supervisor --project {orc.project} --run-root {orc.root}/"
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()


def test_up_boots_its_supervisor_early_and_a_failed_up_leaves_none(
    tmp_path: Path, busybox_rootfs: Path, unique_name: str
) -> None:
    """`up` starts the project's supervisor before the CLI has loaded (orchestrator.cli.entry);
    when the command then fails (a usage error, a file that does not load) that supervisor is
    told to exit, so nothing is left running; a successful `up` uses it."""
    compose = BUSYBOX_STACK.format(project=unique_name, rootfs=busybox_rootfs) + (
        '  web:\n    <<: *busybox\n    command: ["sleep", "100000"]\n'
    )
    with orc_project(tmp_path, unique_name, compose) as orc:
        bad = orc("up", "-d", "--no-such-flag", check=False)
        assert bad.returncode == 2 and "no-such-flag" in bad.stderr
        assert not orc.state_dir.exists(), "the early supervisor left its state behind"
        assert wait_for_none(lambda: _supervisors_of(orc)), "the early supervisor was left running"
        (orc.project_dir / "compose.yaml").write_text(compose + "  broken: [\n")
        assert orc("up", "-d", check=False).returncode != 0
        assert wait_for_none(lambda: _supervisors_of(orc))
        assert not orc.state_dir.exists()
        # refused by the supervisor itself (an x-orc block it cannot use): it leaves as well
        (orc.project_dir / "compose.yaml").write_text(compose + "    x-orc: {bogus: 1}\n")
        refused = orc("up", "-d", check=False)
        assert refused.returncode == 15 and "services.web.x-orc.bogus: unknown x-orc key" in refused.stderr
        assert wait_for_none(lambda: _supervisors_of(orc)), "a refused up left its supervisor running"
        assert not orc.state_dir.exists()
        (orc.project_dir / "compose.yaml").write_text(compose)
        orc("up", "-d")
        assert len(_supervisors_of(orc)) == 1
        assert [(r["Service"], r["State"]) for r in orc.ps()] == [("web", "running")]


def wait_for_none(found: Callable[[], list[str]], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while found():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
