"""End to end on the real kernel, through the CLI: a three-tier busybox stack.

``orc up -d`` starts a detached supervisor; ``ps --format json``, ``logs``, ``exec``, a request to
a published port on loopback, ``stop``/``start`` and ``down`` are checked, and ``down`` must leave
no container, supervisor, cgroup, link or state behind. Each test has its own ``--root``, project
name and cgroup prefix (``unique_name``); a finaliser runs ``down`` and kills a surviving
supervisor if the test failed half-way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.runtime.fsflags import FS_TOPDIR_FL, inode_flags
from orchestrator.runtime.network.naming import host_veth_name
from tests.support.orc_cli import BUSYBOX_STACK, Orc, cgroup_dirs, orc_project, port_stack

pytestmark = pytest.mark.kernel


COMPOSE = (
    BUSYBOX_STACK
    + """  db:
    <<: *busybox
    command: ["sh", "-c", "echo db ready; trap 'exit 0' TERM; sleep 100000 & wait"]
    healthcheck: {{test: ["CMD", "true"], interval: 200ms, retries: 3}}
  api:
    <<: *busybox
    command: ["sh", "-c", "mkdir -p /www && echo api-ok > /www/index.html; echo api up; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
    depends_on: {{db: {{condition: service_healthy}}}}
  web:
    <<: *busybox
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html; trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"]
    depends_on: [api]
    ports: ["127.0.0.1:{port}:80"]
"""
)


@pytest.fixture
def stack(tmp_path: Path, busybox_rootfs: Path, unique_name: str) -> Iterator[tuple[Orc, str, int]]:
    with port_stack(tmp_path, unique_name, busybox_rootfs, COMPOSE) as stack:
        yield stack


def test_three_tier_up_ps_logs_exec_down(stack: tuple[Orc, str, int], tmp_path: Path) -> None:
    orc, project, port = stack
    plan = orc("plan").stdout
    assert f"create {project}-web-1: new service" in plan
    orc("up", "--wait", "--wait-timeout", "60")

    rows = [json.loads(line) for line in orc("ps", "--format", "json").stdout.splitlines()]
    assert {(r["Service"], r["State"]) for r in rows} == {
        ("db", "running"),
        ("api", "running"),
        ("web", "running"),
    }
    assert next(r for r in rows if r["Service"] == "db")["Health"] == "healthy"
    containers = tmp_path / "root" / "lib" / "containers"
    flags = inode_flags(containers)
    if flags is not None:  # ext4: the containers' directories are spread (runtime.fsflags)
        assert flags & FS_TOPDIR_FL
        # and so are the projects' state directories, from the run root the CLI made
        assert (inode_flags(tmp_path / "root" / "run") or 0) & FS_TOPDIR_FL
    web = next(r for r in rows if r["Service"] == "web")
    assert web["Publishers"] == [
        {"URL": "127.0.0.1", "TargetPort": 80, "PublishedPort": port, "Protocol": "tcp"}
    ]

    logs = orc("logs", "--no-log-prefix").stdout
    assert "db ready" in logs and "api up" in logs

    fetched = orc("exec", "web", "wget", "-qO-", "http://api:8080/")
    assert fetched.stdout == "api-ok\n"
    failing = orc("exec", "web", "sh", "-c", "exit 3", check=False)
    assert failing.returncode == 3

    one_off = orc(
        "run", "--rm", "-e", "WHO=one-off", "web", "sh", "-c", "echo $WHO; wget -qO- http://api:8080/"
    )
    assert one_off.stdout == "one-off\napi-ok\n"
    assert len(orc("ps", "-a", "--format", "json").stdout.splitlines()) == 3  # --rm removed it

    web_hostname = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text.strip()
    assert len(web_hostname) == 12

    orc("stop", "web")
    states = {
        json.loads(line)["Service"]: json.loads(line)["State"]
        for line in orc("ps", "-a", "--format", "json").stdout.splitlines()
    }
    assert states["web"] == "exited"
    orc("start", "web")
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200

    second = orc("up", "-d")
    assert "Created" not in second.stderr  # nothing changed: nothing recreated

    orc("down")
    assert orc("ps", "-a", "--format", "json").stdout == ""
    assert cgroup_dirs(project) == []
    assert not (tmp_path / "root" / "run" / project).exists()
    assert not any((tmp_path / "root" / "lib" / "containers").iterdir())
    out = subprocess.run(
        ["pgrep", "-f", f"orchestrator.daemon.supervisor --project {project}"], capture_output=True
    )
    assert out.returncode == 1, "supervisor still running after down"


def test_a_removed_containers_veth_and_address_are_gone_when_rm_returns(
    stack: tuple[Orc, str, int], tmp_path: Path
) -> None:
    """A remove leaves the wait for the kernel's namespace teardown to run beside the other
    actions; the command still returns only once the veth is gone and the address released,
    and a recreate under the same name (the same veth name) waits for it."""
    orc, project, _ = stack
    orc("up", "-d", "--wait", "--wait-timeout", "60")
    name = f"{project}-api-1"
    veth = Path("/sys/class/net") / host_veth_name(name, f"{project}_default")
    state_file = tmp_path / "root" / "run" / "network" / "network" / "state.json"

    def leased() -> list[str]:
        state = json.loads(state_file.read_text())
        return [c for lease in state["ipam"]["networks"].values() for c in lease["addresses"].values()]

    assert veth.exists() and name in json.loads(state_file.read_text())["attachments"]
    first = json.loads(state_file.read_text())["attachments"][name][0]["ipv4"]
    orc("up", "-d", "--force-recreate", "--no-deps", "api")
    assert veth.exists()
    assert json.loads(state_file.read_text())["attachments"][name][0]["ipv4"] == first
    assert orc("exec", "api", "hostname").stdout.strip()

    orc("rm", "--stop", "--force", "api")
    assert not veth.exists()
    assert name not in json.loads(state_file.read_text())["attachments"]
    assert name not in leased()
    orc("down")
    assert cgroup_dirs(project) == []


def test_supervisor_killed_then_adopted(stack: tuple[Orc, str, int], tmp_path: Path) -> None:
    """SIGKILL the supervisor: containers keep running, the next one adopts them, applies their
    restart policy (db has none here, so a crash is recorded) and `down` removes everything."""
    orc, project, _ = stack
    compose = orc.project_dir / "compose.yaml"
    compose.write_text(compose.read_text().replace("  db:\n", "  db:\n    restart: always\n"))
    orc("up", "-d")
    state = tmp_path / "root" / "run" / project
    first = json.loads((state / "project.json").read_text())["supervisor_pid"]
    os.kill(first, signal.SIGKILL)
    db = json.loads((state / "containers" / f"{project}-db-1.json").read_text())
    os.kill(db["pid"], 0)  # still alive without its supervisor

    orc("up", "-d")
    second = json.loads((state / "project.json").read_text())["supervisor_pid"]
    assert second != first
    os.kill(db["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 15
    record = db
    while time.monotonic() < deadline:
        record = json.loads((state / "containers" / f"{project}-db-1.json").read_text())
        if record["status"] == "running" and record["pid"] != db["pid"]:
            break
        time.sleep(0.1)
    assert (record["status"], record["restart_count"]) == ("running", 1)
    assert orc("exec", "db", "echo", "hi").stdout == "hi\n"
    orc("down")
    assert cgroup_dirs(project) == []


def test_service_from_an_image(tmp_path: Path, busybox_rootfs: Path, unique_name: str) -> None:
    """An image (an OCI layout: busybox + one layer, with Entrypoint/Cmd/Env/WorkingDir/User) is
    pulled into orc's store by `up` and run with Docker's rules for its config."""
    import tarfile

    from tests.integration.images.support import (
        Entry,
        ImageSpec,
        make_layer,
        tar_of_dir,
        tar_of_entries,
        write_layout,
    )

    base = make_layer(tar_of_dir(busybox_rootfs), "gzip")
    extra = make_layer(
        tar_of_entries(
            [Entry("app/", tarfile.DIRTYPE, mode=0o755), Entry("app/hello.txt", data=b"from the layer\n")]
        ),
        "gzip",
    )
    config = {
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo hi; trap 'exit 0' TERM; sleep 100000 & wait"],
        "Env": ["PATH=/usr/bin:/bin", "GREETING=hello"],
        "WorkingDir": "/app",
        "User": "1000:1000",
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 200_000_000, "Retries": 3},
    }
    write_layout(tmp_path / "layout", [ImageSpec([base, extra], config=config)], "v1")
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    (project_dir / "compose.yaml").write_text(
        f"name: {unique_name}\nservices:\n  app:\n    image: oci:{tmp_path / 'layout'}:v1\n"
    )
    orc = Orc(tmp_path / "root", project_dir, unique_name)
    try:
        assert "pull oci:" in orc("plan").stdout
        orc("up", "-d")
        deadline = time.monotonic() + 10
        while "hi" not in orc("logs", "--no-log-prefix").stdout and time.monotonic() < deadline:
            time.sleep(0.1)
        assert orc("logs", "--no-log-prefix").stdout == "hi\n"
        while time.monotonic() < deadline:  # the image's HEALTHCHECK runs without a service one
            health = json.loads(orc("ps", "--format", "json").stdout)["Health"]
            if health == "healthy":
                break
            time.sleep(0.1)
        assert health == "healthy"
        out = orc("run", "--rm", "app", "echo $GREETING from $(pwd) as $(id -u); cat hello.txt").stdout
        assert out == "hello from /app as 1000\nfrom the layer\n"
        assert orc("plan").stdout.startswith(f"project {unique_name}: nothing to do")  # image now local
    finally:
        orc("down", "-t", "1", check=False)
    assert cgroup_dirs(unique_name) == []


def test_compose_networks_are_made_as_declared(
    tmp_path: Path, busybox_rootfs: Path, unique_name: str
) -> None:
    """A network's ipam subnet and gateway, a fixed ipv4_address and `internal: true` reach the
    kernel; a network driver orc does not have fails `up` naming the network, creating nothing."""
    seed = sum(unique_name.encode())
    prefix = f"10.{200 + seed % 50}.{seed % 250}"
    compose = (
        BUSYBOX_STACK.format(project=unique_name, rootfs=busybox_rootfs)
        + f"""  front:
    <<: *busybox
    command: ["sleep", "100000"]
    networks:
      edge: {{ipv4_address: {prefix}.10}}
      back: {{}}
networks:
  edge:
    ipam: {{config: [{{subnet: {prefix}.0/24, gateway: {prefix}.1}}]}}
  back:
    internal: true
"""
    )
    with orc_project(tmp_path, unique_name, compose) as orc:
        orc("up", "-d")
        addresses = orc("exec", "-T", "front", "ip", "-4", "-o", "addr").stdout
        assert f"inet {prefix}.10/24" in addresses, addresses
        routes = orc("exec", "-T", "front", "ip", "route").stdout
        assert f"default via {prefix}.1" in routes, routes
        state = json.loads((orc.state_dir / "project.json").read_text())
        subnets = {n["name"]: n["subnet"] for n in state["networks"]}
        assert subnets[f"{unique_name}_edge"] == f"{prefix}.0/24"
        network = json.loads(next((orc.root / "run").glob("network/**/state.json")).read_text())
        assert network["networks"][f"{unique_name}_back"]["internal"] is True
        orc("down", "-t", "1")

        (orc.project_dir / "compose.yaml").write_text(
            compose.replace("    internal: true", "    driver: macvlan")
        )
        failed = orc("up", "-d", check=False)
        assert failed.returncode != 0
        assert "network back: orc does not support driver 'macvlan' (only bridge)" in failed.stderr
        assert [r["State"] for r in orc.ps()] in ([], ["created"])


def test_a_start_prepared_ahead_whose_dependency_fails_leaves_nothing_running(
    tmp_path: Path, busybox_rootfs: Path, unique_name: str
) -> None:
    """`up` prepares a created container's start (its init, cgroup, veth and address) before its
    dependencies are up; when a dependency then fails, the dependent stays `created` and its
    preparation is undone before `up` returns: no process, no veth, no lease."""
    compose = BUSYBOX_STACK.format(project=unique_name, rootfs=busybox_rootfs) + (
        "  job:\n    <<: *busybox\n    command: [sh, -c, 'sleep 0.3; exit 3']\n"
        "  app:\n    <<: *busybox\n    command: [sleep, '100000']\n"
        "    depends_on: {job: {condition: service_completed_successfully}}\n"
    )
    with orc_project(tmp_path, unique_name, compose) as orc:
        result = orc("up", "-d", check=False)
        assert result.returncode != 0
        rows = {
            r["Service"]: r for r in map(json.loads, orc("ps", "-a", "--format", "json").stdout.splitlines())
        }
        assert rows["app"]["State"] == "created"
        name = f"{unique_name}-app-1"
        assert not (Path("/sys/class/net") / host_veth_name(name, f"{unique_name}_default")).exists()
        state = json.loads((tmp_path / "root" / "run" / "network" / "network" / "state.json").read_text())
        assert name not in state["attachments"]
        assert f"{unique_name}-job-1" in state["attachments"]
        record = json.loads(
            (tmp_path / "root" / "run" / unique_name / "containers" / f"{name}.json").read_text()
        )
        assert record["pid"] is None
        left = [d for _, dirs, _ in os.walk("/sys/fs/cgroup") for d in dirs if d == record["container_id"]]
        assert left == []
        orc("up", "-d", "--no-deps", "app")  # and it starts normally later
        assert orc("exec", "app", "true").returncode == 0
