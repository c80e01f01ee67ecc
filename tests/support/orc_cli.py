"""Running the ``orc`` CLI from tests as a user would, and cleaning up after it.

Owned here: the plumbing the kernel, integration and end-to-end tests share — ``run_orc`` (one
``python -m orchestrator --root ROOT ...`` call that fails the test with its output when it
exits non-zero), :class:`Orc` (that call bound to a root, a project directory and a project name
that is also the cgroup prefix), :func:`orc_project` (a project directory with a compose file,
taken down afterwards pass or fail), :func:`clean_up` (``down``, then kill a supervisor or fork
server that outlived it and remove the project's cgroups), :func:`port_stack` (the same for a
template with a free port), :func:`wait_until`, :func:`cgroup_dirs`, :func:`free_port`
and :data:`BUSYBOX_STACK`, the start of a compose file running the tests' busybox rootfs. Used by tests/kernel/*, tests/integration/images/test_lock_wiring.py and
tests/e2e/conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from orchestrator.runtime.network.naming import nft_table_name

# The start of a compose file whose services merge ``<<: *busybox`` to run the session's busybox
# rootfs: a str.format template ({project}, {rootfs}) to which the services are appended.
BUSYBOX_STACK = """
name: {project}
x-busybox: &busybox
  image: busybox:orc-test
  x-orc: {{rootfs: {rootfs}}}
services:
"""


def busybox_stack(project: str, rootfs: Path) -> str:
    """:data:`BUSYBOX_STACK` filled in; append the services (indented two spaces)."""
    return BUSYBOX_STACK.format(project=project, rootfs=rootfs)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], *, timeout: float, interval: float, failure: Callable[[], str]
) -> None:
    """Poll ``condition`` every ``interval`` seconds; after ``timeout`` fail the test with the
    message ``failure()`` builds then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(failure())


def orc_argv(root: Path, *args: str) -> list[str]:
    """The command line of ``orc --root ROOT ARGS`` run with this interpreter."""
    return [sys.executable, "-m", "orchestrator", "--root", str(root), *args]


def run_orc(
    root: Path,
    args: Iterable[str],
    *,
    cwd: Path,
    env: dict[str, str],
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``orc --root ROOT ARGS`` in ``cwd`` with stdin closed; with ``check`` a non-zero exit
    fails the test showing both output streams."""
    arguments = list(args)
    result = subprocess.run(
        orc_argv(root, *arguments),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        # a terminal on the test runner's stdin would make `exec` and `run` allocate one
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"orc {' '.join(arguments)} failed ({result.returncode}):\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


class Orc:
    """``orc --root ROOT ...`` run in a project directory; ``project`` is the project's name and
    its cgroup prefix (``ORC_CGROUP_PREFIX``). ``env`` is added to this process's environment,
    after the names in ``unset`` that ``env`` does not set are dropped from it."""

    def __init__(
        self,
        root: Path,
        project_dir: Path,
        project: str,
        env: dict[str, str] | None = None,
        unset: Iterable[str] = (),
    ) -> None:
        self.root = root
        self.project_dir = project_dir
        self.project = project
        inherited = {k: v for k, v in os.environ.items() if k not in set(unset)}
        self.env = {**inherited, "ORC_CGROUP_PREFIX": project, **(env or {})}

    def __call__(
        self, *args: str, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_orc(self.root, args, cwd=cwd or self.project_dir, env=self.env, check=check)

    def popen(self, *args: str, **options: Any) -> subprocess.Popen[Any]:
        """``orc ARGS`` started in the background (``logs -f``, ``events``, a pseudo-terminal)."""
        return subprocess.Popen(orc_argv(self.root, *args), cwd=self.project_dir, env=self.env, **options)

    def ps(self) -> list[dict[str, Any]]:
        """``ps -a --format json``, one dict per container."""
        return [json.loads(line) for line in self("ps", "-a", "--format", "json").stdout.splitlines()]

    @property
    def state_dir(self) -> Path:
        """The project's run-time state: ``project.json`` and ``containers/<name>.json``."""
        return self.root / "run" / self.project


def cgroup_dirs(prefix: str) -> list[str]:
    """Every cgroup directory, in any hierarchy, whose name starts with ``prefix``."""
    found = []
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(dirpath, d) for d in dirnames if d.startswith(prefix)]
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def clean_up(orc: Orc, down: Iterable[str] = ("down", "-t", "1")) -> None:
    """Run ``down`` (ignoring failure), then kill a supervisor or fork server of this root that a
    half-way failure left running and remove the project's cgroups, deepest first. A ``down``
    that hangs is reported once the rest is cleaned up: the project's processes are killed, a
    second ``down`` (a fresh supervisor, from the state on disk) removes what orc made, and
    what even that left (mounts below the root, the recorded bridges and their firewall rules)
    is removed by hand."""
    hung: subprocess.TimeoutExpired | None = None
    try:
        orc(*down, check=False)
    except subprocess.TimeoutExpired as exc:
        hung = exc
    _kill_orc_processes(orc)
    if hung is not None:
        _kill_cgroup_members(orc.project)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run_orc(orc.root, ("down", "-t", "0"), cwd=orc.project_dir, env=orc.env, check=False, timeout=60)
        _kill_orc_processes(orc)
    _kill_cgroup_members(orc.project)
    _unmount_below(orc.root)
    _remove_recorded_bridges(orc)
    for directory in sorted(cgroup_dirs(orc.project), key=len, reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(directory)
    if hung is not None:
        raise hung


def _kill_orc_processes(orc: Orc) -> None:
    """SIGKILL the project's supervisor and any supervisor or fork server of this root."""
    record = orc.state_dir / "project.json"
    if record.exists():
        with contextlib.suppress(ValueError, OSError):
            pid = json.loads(record.read_text()).get("supervisor_pid")
            if pid:
                _kill(int(pid))
    pattern = rf"orchestrator\.(daemon\.supervisor|runtime\.process\.forkserver) .*{orc.root}/"
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    for pid_text in found:
        _kill(int(pid_text))


def _kill_cgroup_members(prefix: str) -> None:
    """SIGKILL every process in the project's cgroups until they are empty (2 s at most)."""
    deadline = time.monotonic() + 2
    while True:
        members = set()
        for directory in cgroup_dirs(prefix):
            with contextlib.suppress(OSError):
                members.update(int(p) for p in Path(directory, "cgroup.procs").read_text().split())
        if not members or time.monotonic() > deadline:
            return
        for pid in members:
            _kill(pid)
        time.sleep(0.05)


def _unmount_below(root: Path) -> None:
    """Detach every mount below ``root`` (container rootfs, netns bind mounts), deepest first."""
    prefix = str(root) + "/"
    points = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _remove_recorded_bridges(orc: Orc) -> None:
    """Delete the bridges ``project.json`` records that still exist, and their firewall rules."""
    record = orc.state_dir / "project.json"
    try:
        networks = json.loads(record.read_text()).get("networks") or []
    except (OSError, ValueError):
        return
    bridges = {str(n.get("driver_name")) for n in networks if n.get("driver_name") and not n.get("external")}
    for bridge in bridges:
        if os.path.exists(f"/sys/class/net/{bridge}"):
            subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        if shutil.which("nft") is not None:  # the network's own table (masquerade, isolation)
            subprocess.run(
                ["nft", "delete", "table", "inet", nft_table_name(bridge)], capture_output=True, check=False
            )
    if not bridges or shutil.which("iptables-save") is None:
        return
    for table in ("filter", "nat"):
        saved = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True, check=False)
        for line in saved.stdout.splitlines():
            if line.startswith("-A ") and any(f'"orc:{b}"' in line or f"orc:{b} " in line for b in bridges):
                rule = shlex.split(line)
                subprocess.run(["iptables", "-t", table, "-D", *rule[1:]], capture_output=True, check=False)


@contextlib.contextmanager
def orc_project(
    tmp_path: Path,
    project: str,
    compose: str | None = None,
    *,
    down: Iterable[str] = ("down", "-t", "1"),
    env: dict[str, str] | None = None,
    unset: Iterable[str] = (),
) -> Iterator[Orc]:
    """An :class:`Orc` on ``tmp_path/root`` for ``tmp_path/project`` (with ``compose.yaml`` when
    ``compose`` is given); :func:`clean_up` runs ``down`` afterwards, pass or fail."""
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    if compose is not None:
        (project_dir / "compose.yaml").write_text(compose)
    orc = Orc(tmp_path / "root", project_dir, project, env, unset)
    try:
        yield orc
    finally:
        clean_up(orc, down)


@contextlib.contextmanager
def port_stack(
    tmp_path: Path,
    project: str,
    rootfs: Path,
    template: str,
    *,
    down: Iterable[str] = ("down", "-t", "1"),
) -> Iterator[tuple[Orc, str, int]]:
    """:func:`orc_project` for ``template`` formatted with ``project``, ``rootfs`` and a free
    loopback ``port``; yields ``(orc, project, port)``."""
    port = free_port()
    compose = template.format(project=project, rootfs=rootfs, port=port)
    with orc_project(tmp_path, project, compose, down=down) as orc:
        yield orc, project, port
