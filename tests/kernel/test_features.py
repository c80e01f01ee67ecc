"""End to end on the real kernel: secrets and configs, named volumes (``name:``, ``external``,
``driver_opts`` bind, ``down -v``), ``volumes_from``, ``network_mode``/``ipc``/``pid: service:X``,
keys orc cannot honour, and the ``cp``/``stats``/``wait`` verbs, through the CLI with a busybox
rootfs. Each test has its own ``--root``, project name and cgroup prefix; the finaliser runs
``down -v`` and kills a surviving supervisor.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.reconciler.volumes import anonymous_key
from tests.support.orc_cli import BUSYBOX_STACK, Orc, busybox_stack, cgroup_dirs, orc_project

pytestmark = pytest.mark.kernel

SLEEPER = '["sh", "-c", "trap \'exit 0\' TERM; sleep 100000 & wait"]'

FEATURES = (
    BUSYBOX_STACK
    + """  app:
    <<: *busybox
    command: {sleeper}
    secrets:
      - token
      - source: from_env
        target: renamed
        uid: "1000"
        gid: "1001"
        mode: 0400
    configs:
      - inline
      - source: from_file
        target: /etc/app/app.conf
        mode: 0640
    volumes:
      - data:/data
      - named:/named
      - bound:/bound
      - /anon
  sidecar:
    <<: *busybox
    command: {sleeper}
    network_mode: service:app
    ipc: service:app
    pid: service:app
    volumes_from: ["app:ro"]
secrets:
  token:
    file: ./token.txt
  from_env:
    environment: ORCT_SECRET
configs:
  inline:
    content: "inline config"
  from_file:
    file: ./app.conf
volumes:
  data: {{}}
  named:
    name: {project}-custom
  bound:
    driver_opts: {{type: none, o: bind, device: {device}}}
"""
)


@pytest.fixture
def project(tmp_path: Path, busybox_rootfs: Path, unique_name: str) -> Iterator[tuple[Orc, str, Path]]:
    with orc_project(tmp_path, unique_name, down=("down", "-v", "-t", "1")) as orc:
        yield orc, unique_name, orc.project_dir


def write(project_dir: Path, text: str) -> None:
    (project_dir / "compose.yaml").write_text(text)


def test_secrets_configs_volumes_and_shared_namespaces(
    project: tuple[Orc, str, Path], busybox_rootfs: Path, tmp_path: Path
) -> None:
    orc, name, project_dir = project
    device = tmp_path / "device"
    device.mkdir()
    (device / "seen").write_text("from the device\n")
    (project_dir / "token.txt").write_text("s3cret")
    (project_dir / "token.txt").chmod(0o640)  # a file without mode/uid/gid keeps its own
    (project_dir / "app.conf").write_text("key=value\n")
    write(project_dir, FEATURES.format(project=name, rootfs=busybox_rootfs, sleeper=SLEEPER, device=device))
    orc.env["ORCT_SECRET"] = "from-the-environment"
    orc("up", "--wait", "--wait-timeout", "60")

    listing = orc(
        "exec",
        "app",
        "sh",
        "-c",
        "for f in /run/secrets/token /run/secrets/renamed /inline /etc/app/app.conf; do"
        ' stat -c "%n %a %u %g" $f; cat $f; echo; done',
    ).stdout
    assert listing.splitlines() == [
        "/run/secrets/token 640 0 0",
        "s3cret",
        "/run/secrets/renamed 400 1000 1001",
        "from-the-environment",
        "/inline 444 0 0",
        "inline config",
        "/etc/app/app.conf 640 0 0",
        "key=value",
        "",
    ]
    refused = orc("exec", "app", "sh", "-c", "echo x > /run/secrets/token", check=False)
    assert refused.returncode != 0  # read-only

    orc("exec", "app", "sh", "-c", "echo d > /data/f; echo n > /named/f; echo b > /bound/f; echo a > /anon/f")
    lib = tmp_path / "root" / "lib"
    assert (lib / "volumes" / f"{name}_data" / "_data" / "f").read_text() == "d\n"
    assert (lib / "volumes" / f"{name}-custom" / "_data" / "f").read_text() == "n\n"
    assert (device / "f").read_text() == "b\n"
    assert orc("exec", "app", "cat", "/bound/seen").stdout == "from the device\n"

    # the sidecar shares app's network, ipc and pid namespaces and sees its volumes read-only
    app = json.loads((tmp_path / "root" / "run" / name / "containers" / f"{name}-app-1.json").read_text())
    side = json.loads(
        (tmp_path / "root" / "run" / name / "containers" / f"{name}-sidecar-1.json").read_text()
    )
    for kind in ("net", "ipc", "pid"):
        assert os.readlink(f"/proc/{side['pid']}/ns/{kind}") == os.readlink(f"/proc/{app['pid']}/ns/{kind}")
    assert os.readlink(f"/proc/{side['pid']}/ns/mnt") != os.readlink(f"/proc/{app['pid']}/ns/mnt")
    assert (
        orc("exec", "sidecar", "cat", "/data/f", "/named/f", "/bound/f", "/anon/f").stdout == "d\nn\nb\na\n"
    )
    assert orc("exec", "sidecar", "sh", "-c", "echo x > /data/g", check=False).returncode != 0
    assert orc("exec", "sidecar", "hostname").stdout == orc("exec", "app", "hostname").stdout

    # a restart rewrites the files from their sources
    (project_dir / "token.txt").write_text("rotated")
    orc("restart", "app")
    assert orc("exec", "app", "cat", "/run/secrets/token").stdout == "rotated"

    orc("down", "-v")
    assert not (lib / "volumes" / f"{name}_data").exists()
    assert not (lib / "volumes" / f"{name}-custom").exists()
    assert (device / "seen").exists()  # a bind device's contents are not the volume's to remove
    assert cgroup_dirs(name) == []


def test_external_volume_must_exist(
    project: tuple[Orc, str, Path], busybox_rootfs: Path, tmp_path: Path
) -> None:
    orc, name, project_dir = project
    write(
        project_dir,
        f"""
name: {name}
services:
  app:
    image: busybox:orc-test
    x-orc: {{rootfs: {busybox_rootfs}}}
    command: ["sh", "-c", "cat /v/f"]
    volumes: ["shared:/v"]
volumes:
  shared:
    external: true
    name: {name}-ext
""",
    )
    failed = orc("up", "-d", check=False)
    assert failed.returncode != 0
    assert f"external volume '{name}-ext' not found" in failed.stderr
    data = tmp_path / "root" / "lib" / "volumes" / f"{name}-ext" / "_data"
    data.mkdir(parents=True)
    (data / "f").write_text("kept\n")
    orc("up", "-d")
    assert orc("wait", "app").stderr.strip().endswith("exited with status code 0")
    assert "kept" in orc("logs", "--no-log-prefix", "app").stdout
    orc("down", "-v")
    assert (data / "f").exists()  # external: down -v leaves it


def test_unsupported_keys_fail_their_service_only(
    project: tuple[Orc, str, Path], busybox_rootfs: Path
) -> None:
    orc, name, project_dir = project
    write(
        project_dir,
        busybox_stack(name, busybox_rootfs)
        + f"""  fine:
    <<: *busybox
    command: {SLEEPER}
  watched:
    <<: *busybox
    command: {SLEEPER}
    develop:
      watch: [{{action: sync, path: ./src, target: /src}}]
  built:
    build: ./context
  parented:
    <<: *busybox
    command: {SLEEPER}
    cgroup_parent: elsewhere
""",
    )
    (project_dir / "context").mkdir()
    failed = orc("up", "-d", check=False)
    assert failed.returncode != 0
    assert "service watched: orc does not support 'develop'" in failed.stderr
    assert "service built has build: but no image" in failed.stderr
    assert "service parented: orc does not support 'cgroup_parent'" in failed.stderr
    states = {
        json.loads(line)["Service"]: json.loads(line)["State"]
        for line in orc("ps", "-a", "--format", "json").stdout.splitlines()
    }
    assert states == {"fine": "running"}


def test_file_modes_on_disk(project: tuple[Orc, str, Path], busybox_rootfs: Path, tmp_path: Path) -> None:
    """The materialised files live in the container's directory with the asked owner and mode,
    and go away with the container."""
    orc, name, project_dir = project
    write(
        project_dir,
        f"""
name: {name}
services:
  app:
    image: busybox:orc-test
    x-orc: {{rootfs: {busybox_rootfs}}}
    command: {SLEEPER}
    configs: [{{source: c, uid: "7", mode: 0440}}]
configs:
  c: {{content: "abc"}}
""",
    )
    orc("up", "-d")
    files = list((tmp_path / "root" / "lib" / "containers" / f"{name}-app-1" / "files").iterdir())
    assert len(files) == 1
    info = files[0].stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o440, 7, 0)
    orc("down")
    assert not (tmp_path / "root" / "lib" / "containers" / f"{name}-app-1").exists()


def test_cp_stats_wait(project: tuple[Orc, str, Path], busybox_rootfs: Path, tmp_path: Path) -> None:
    orc, name, project_dir = project
    write(
        project_dir,
        busybox_stack(name, busybox_rootfs)
        + """  app:
    <<: *busybox
    command: ["sh", "-c", "mkdir -p /srv/tree/sub; echo leaf > /srv/tree/sub/leaf; ln -s /etc/shadow /srv/escape; trap 'exit 0' TERM; while :; do :; done & wait"]
    mem_limit: 64m
  job:
    <<: *busybox
    command: ["sh", "-c", "sleep 1; exit 7"]
""",
    )
    orc("up", "-d")
    # cp: container → host (a tree), host → container (a file into a directory)
    for _ in range(50):
        if orc("exec", "app", "test", "-f", "/srv/tree/sub/leaf", check=False).returncode == 0:
            break
    out = tmp_path / "out"
    orc("cp", "app:/srv/tree", str(out))
    assert (out / "sub" / "leaf").read_text() == "leaf\n"
    (tmp_path / "in.txt").write_text("from the host\n")
    orc("cp", str(tmp_path / "in.txt"), "app:/srv/")
    assert orc("exec", "app", "cat", "/srv/in.txt").stdout == "from the host\n"
    # an absolute symlink inside the container resolves inside it, never to the host's file
    escaped = orc("cp", "app:/srv/escape", str(tmp_path / "shadow"), check=False)
    if escaped.returncode == 0:
        assert (tmp_path / "shadow").read_text() != Path("/etc/shadow").read_text()

    rows = [json.loads(line) for line in orc("stats", "--no-stream", "--format", "json").stdout.splitlines()]
    by_name = {r["Name"]: r for r in rows}
    assert set(by_name) == {f"{name}-app-1", f"{name}-job-1"} or set(by_name) == {f"{name}-app-1"}
    app = by_name[f"{name}-app-1"]
    assert float(app["CPUPerc"].rstrip("%")) > 20.0  # the busy loop
    assert app["MemUsage"].endswith(" / 64MiB")
    assert int(app["PIDs"]) >= 2
    assert set(app) == {
        "BlockIO",
        "CPUPerc",
        "Container",
        "ID",
        "MemPerc",
        "MemUsage",
        "Name",
        "NetIO",
        "PIDs",
    }

    job_id = json.loads((tmp_path / "root" / "run" / name / "containers" / f"{name}-job-1.json").read_text())[
        "container_id"
    ]
    waited = orc("wait", "job")  # exits 0 and reports on stderr, as Docker Compose v2.40.3
    assert waited.stderr == f'container "{job_id}" exited with status code 7\n'
    assert (
        app["Container"]
        == json.loads((tmp_path / "root" / "run" / name / "containers" / f"{name}-app-1.json").read_text())[
            "container_id"
        ]
    )


def run_on_terminal(orc: Orc, *args: str, resize_at: bytes | None = None) -> tuple[int, str]:
    """Run ``orc ARGS`` with a pseudo-terminal (33 rows, 101 columns) as stdin/stdout/stderr;
    with ``resize_at``, the terminal becomes 40 rows, 120 columns once that output was seen."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    process = orc.popen(
        *args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    output = b""
    started = time.monotonic()
    deadline = started + 60
    try:
        while time.monotonic() < deadline:
            if resize_at is not None and resize_at in output:
                fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
                resize_at = None
            if slave >= 0 and resize_at is None:
                os.close(slave)  # EOF on the master once orc and the container are done with it
                slave = -1
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every slave end is closed
                break
            if not chunk:
                break
            output += chunk
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if slave >= 0:
            os.close(slave)
        os.close(master)
    return code, output.decode(errors="replace").replace("\r\n", "\n")


def test_exec_with_a_terminal(project: tuple[Orc, str, Path], busybox_rootfs: Path) -> None:
    orc, name, project_dir = project
    write(
        project_dir,
        f"""
name: {name}
services:
  app:
    image: busybox:orc-test
    x-orc: {{rootfs: {busybox_rootfs}}}
    command: {SLEEPER}
""",
    )
    orc("up", "-d")
    code, output = run_on_terminal(orc, "exec", "app", "sh", "-c", "tty; stty size; exit 4")
    assert code == 4
    lines = output.splitlines()
    assert lines[0].startswith("/dev/pts/"), output
    assert "33 101" in lines, output
    # -T: no terminal of the container's own (the caller's descriptors are used as they are)
    code, output = run_on_terminal(orc, "exec", "-T", "app", "ls", "/dev/pts")
    assert (code, output.split()) == (0, ["ptmx"])
    code, output = run_on_terminal(orc, "exec", "app", "ls", "/dev/pts")
    assert (code, output.split()) == (0, ["0", "ptmx"])
    # run: a pseudo-terminal of the one-off container's own, unless -T
    code, output = run_on_terminal(orc, "run", "--rm", "app", "sh", "-c", "tty; stty size; exit 5")
    assert code == 5, output
    assert any(line.startswith("/dev/pts/") for line in output.splitlines()), output
    assert "33 101" in output.splitlines(), output
    # the caller's window resized while the process runs: its terminal follows (and a process
    # asking at once already has the caller's size: it is set before the process runs)
    code, output = run_on_terminal(
        orc, "exec", "app", "sh", "-c", "stty size; sleep 1.5; stty size", resize_at=b"33 101"
    )
    assert code == 0 and output.splitlines()[-2:] == ["33 101", "40 120"], output
    code, output = run_on_terminal(
        orc,
        "run",
        "--rm",
        "app",
        "sh",
        "-c",
        "stty size; sleep 1.5; stty size",
        resize_at=b"33 101",
    )
    assert code == 0 and output.splitlines()[-2:] == ["33 101", "40 120"], output
    code, output = run_on_terminal(orc, "run", "--rm", "-T", "app", "ls", "/dev/pts")
    assert (code, output.split()[-1:]) == (0, ["ptmx"]), output
    assert "0" not in output.split()


def test_tty_service_output_reaches_the_log(project: tuple[Orc, str, Path], busybox_rootfs: Path) -> None:
    """``tty: true``: the output comes through the terminal; more than a terminal buffers
    (~200 kB) must not block the process, and all of it lands in the log."""
    orc, name, project_dir = project
    write(
        project_dir,
        f"""
name: {name}
services:
  chatty:
    image: busybox:orc-test
    x-orc: {{rootfs: {busybox_rootfs}}}
    tty: true
    command: ["sh", "-c", "test -t 1 && echo on-a-terminal; i=0; while [ $$i -lt 4000 ]; do echo line-$$i-................................................; i=$$((i+1)); done; echo finished"]
""",
    )
    orc("up", "-d")
    waited = orc("wait", "chatty")
    assert waited.stderr.strip().endswith("exited with status code 0")
    logs = orc("logs", "--no-log-prefix", "chatty").stdout.splitlines()
    assert logs[0].strip() == "on-a-terminal"
    assert logs[-1].strip() == "finished"
    assert len(logs) == 4002


def test_named_volume_filled_from_the_image(
    project: tuple[Orc, str, Path], busybox_rootfs: Path, tmp_path: Path
) -> None:
    """Docker's copy-up: an empty volume gets the image's files at its target on the first
    start only; ``nocopy`` opts out."""
    orc, name, project_dir = project
    write(
        project_dir,
        busybox_stack(name, busybox_rootfs)
        + f"""  app:
    <<: *busybox
    command: {SLEEPER}
    volumes:
      - etc:/etc
      - type: volume
        source: bare
        target: /home
        volume: {{nocopy: true}}
      - /var
volumes: {{etc: {{}}, bare: {{}}}}
""",
    )
    orc("up", "-d")
    volumes = tmp_path / "root" / "lib" / "volumes"
    assert (volumes / f"{name}_etc" / "_data" / "passwd").read_bytes() == (
        busybox_rootfs / "etc" / "passwd"
    ).read_bytes()
    assert list((volumes / f"{name}_bare" / "_data").iterdir()) == []
    anonymous = tmp_path / "root" / "lib" / "containers" / f"{name}-app-1" / "volumes"
    assert sorted(p.name for p in (anonymous / anonymous_key("/var")).iterdir()) == sorted(
        p.name for p in (busybox_rootfs / "var").iterdir()
    )
    assert list((busybox_rootfs / "var").iterdir())  # not a vacuous comparison
    (volumes / f"{name}_etc" / "_data" / "passwd").unlink()
    orc("restart", "app")
    assert not (volumes / f"{name}_etc" / "_data" / "passwd").exists()
