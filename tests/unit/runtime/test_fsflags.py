"""chattr +T on orc's containers directory: set where the filesystem has it, a no-op elsewhere,
and real errors still raised."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from orchestrator.runtime import fsflags


def test_marks_a_directory_as_a_top_directory(tmp_path: Path) -> None:
    before = fsflags.inode_flags(tmp_path)
    if before is None:
        pytest.skip(f"{tmp_path}'s filesystem has no inode flags")
    assert not before & fsflags.FS_TOPDIR_FL
    assert fsflags.mark_top_directory(tmp_path)
    after = fsflags.inode_flags(tmp_path)
    assert after == before | fsflags.FS_TOPDIR_FL  # the other flags kept
    assert fsflags.mark_top_directory(tmp_path)  # again: nothing to change
    assert fsflags.inode_flags(tmp_path) == after


@pytest.mark.parametrize("number", [errno.ENOTTY, errno.EOPNOTSUPP])
def test_a_filesystem_without_the_flag_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: int
) -> None:
    def refuse(*_args: object) -> bytes:
        raise OSError(number, "refused")

    monkeypatch.setattr(fsflags.fcntl, "ioctl", refuse)
    assert fsflags.mark_top_directory(tmp_path) is False
    assert fsflags.inode_flags(tmp_path) is None


def test_other_errors_are_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> bytes:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(fsflags.fcntl, "ioctl", broken)
    with pytest.raises(OSError):
        fsflags.mark_top_directory(tmp_path)
    with pytest.raises(FileNotFoundError):
        fsflags.mark_top_directory(tmp_path / "missing")
