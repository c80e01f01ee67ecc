"""Writing back orc's filesystems after an ``up`` (``runtime.writeback``)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from orchestrator.runtime import writeback


def test_each_filesystem_is_synced_once_and_missing_paths_are_skipped(tmp_path: Path) -> None:
    synced: list[int] = []

    def syncfs(fd: int) -> None:
        synced.append(os.fstat(fd).st_dev)

    (tmp_path / "lib").mkdir()
    (tmp_path / "run").mkdir()
    paths = [tmp_path / "lib", tmp_path / "run", tmp_path / "missing", Path("/proc")]
    assert writeback.write_back(paths, syncfs) == 2
    assert synced == [os.stat(tmp_path).st_dev, os.stat("/proc").st_dev]


def test_a_failure_is_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def syncfs(fd: int) -> None:
        raise OSError(5, "Input/output error")

    assert writeback.write_back([tmp_path], syncfs) == 0
    assert f"orc: writing back {tmp_path}: Input/output error" in capsys.readouterr().err


def test_one_write_back_at_a_time(tmp_path: Path) -> None:
    inside, leave = threading.Event(), threading.Event()

    def slow_syncfs(fd: int) -> None:
        inside.set()
        leave.wait(5)

    first = threading.Thread(target=writeback.write_back, args=([tmp_path], slow_syncfs))
    first.start()
    try:
        assert inside.wait(5)
        assert writeback.write_back([tmp_path], lambda fd: None) == 0  # the running one covers it
    finally:
        leave.set()
        first.join(5)
    assert writeback.write_back([tmp_path], lambda fd: None) == 1


def test_the_real_syncfs_accepts_a_directory(tmp_path: Path) -> None:
    assert writeback.write_back([tmp_path]) == 1
    writeback.write_back_in_background([tmp_path]).join(10)
