"""End-to-end plumbing: run the ``orc`` CLI as a user would, on a private root, and clean up.

``OrcCli`` runs ``python -m orchestrator --root <tmp>/root -p <unique> ...`` in an example's
directory (with tests/support/orc_cli.py's ``run_orc``, as the kernel tests do); the ``orc``
fixture takes the project down (``down -v``) after the test, pass or fail, and fails the test if
any process of the project's containers survives. ``offline_busybox`` packs
and loads ``orc.local/busybox:latest`` with ``scripts/pack-rootfs-image.py``, as the quickstart does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.orc_cli import run_orc, wait_until

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PACKER = REPO / "scripts" / "pack-rootfs-image.py"


class OrcCli:
    """The ``orc`` command bound to one state root and project name."""

    def __init__(self, root: Path, project: str, directory: Path, env: dict[str, str]) -> None:
        self.root = root
        self.project = project
        self.directory = directory
        self.env = env

    def run(
        self, *args: str, check: bool = True, timeout: float = 120, project: bool = True
    ) -> subprocess.CompletedProcess[str]:
        project_args = ("-p", self.project) if project else ()
        return run_orc(
            self.root, (*project_args, *args), cwd=self.directory, env=self.env, check=check, timeout=timeout
        )

    def ps(self) -> list[dict[str, object]]:
        out = self.run("ps", "-a", "--format", "json").stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return list(json.loads(out))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 30) -> None:
        wait_until(
            predicate,
            timeout=timeout,
            interval=0.25,
            failure=lambda: f"timed out after {timeout}s waiting for {what}; ps: {self.ps()}",
        )


def assert_before(output: str, first: str, second: str) -> None:
    """``first`` appears in ``output`` before ``second`` (both must appear)."""
    assert first in output and second in output, f"want {first!r} then {second!r} in:\n{output}"
    assert output.index(first) < output.index(second), f"want {first!r} before {second!r} in:\n{output}"


def _project_pids(project: str) -> list[int]:
    """Processes whose cgroup path names one of the project's containers."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"{project}-" in (entry / "cgroup").read_text():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.fixture
def orc_factory(tmp_path: Path, unique_name: str) -> Iterator[Callable[..., OrcCli]]:
    """Makes an :class:`OrcCli` for a copy of an example; everything is taken down afterwards."""
    made: list[OrcCli] = []

    def make(example: str, env: dict[str, str] | None = None) -> OrcCli:
        directory = tmp_path / example
        shutil.copytree(EXAMPLES / example, directory, symlinks=True)
        cli = OrcCli(tmp_path / "root", unique_name, directory, {**os.environ, **(env or {})})
        made.append(cli)
        return cli

    yield make
    for cli in made:
        cli.run("down", "-v", "-t", "2", check=False)
        deadline = time.monotonic() + 5
        while _project_pids(cli.project) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _project_pids(cli.project)
        assert not left, f"processes of {cli.project} survived down: {left}"


@pytest.fixture
def offline_busybox() -> Callable[[OrcCli], None]:
    """Loads orc.local/busybox:latest into a CLI's root the way scripts/quickstart.sh does."""

    def load(cli: OrcCli) -> None:
        archive = cli.root.parent / "busybox-image.tar"
        if not archive.exists():
            subprocess.run(
                [
                    sys.executable,
                    str(PACKER),
                    "--busybox",
                    "--name",
                    "orc.local/busybox:latest",
                    "-o",
                    str(archive),
                ],
                check=True,
                capture_output=True,
            )
        out = cli.run("image", "load", "-i", str(archive), project=False).stdout
        assert "Loaded image: orc.local/busybox:latest" in out

    return load
