"""swapfile: atomic replacement that reuses a file's two inodes, and what a killed writer leaves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.swapfile import held_path, remove, replace_contents, spare_path


def test_the_first_write_makes_only_the_file(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    replace_contents(target, b"one")
    assert target.read_bytes() == b"one"
    assert os.listdir(tmp_path) == ["record.json"]


def test_later_writes_reuse_the_same_two_inodes(tmp_path: Path) -> None:
    """A temporary file renamed over the old one would take a new inode on every write (and
    free one): on ext4 without a journal each later file creation nearby then got slower."""
    target = tmp_path / "record.json"
    replace_contents(target, b"v1")
    replace_contents(target, b"v2")
    inodes = {target.stat().st_ino, spare_path(target).stat().st_ino}
    assert len(inodes) == 2
    seen = []
    for n in range(3, 9):
        replace_contents(target, f"v{n}".encode() * n)
        assert target.read_bytes() == f"v{n}".encode() * n
        assert {target.stat().st_ino, spare_path(target).stat().st_ino} == inodes
        seen.append(target.stat().st_ino)
    assert set(seen) == inodes  # the file alternates between them
    assert sorted(os.listdir(tmp_path)) == [".record.json.spare", "record.json"]


def test_a_reader_of_the_old_version_reads_it_whole_after_a_write(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    replace_contents(target, b"old contents")
    replace_contents(target, b"old contents, the current ones")
    with open(target, "rb") as reader:
        replace_contents(target, b"new")
        assert reader.read() == b"old contents, the current ones"
    assert target.read_bytes() == b"new"


def test_a_writer_killed_after_linking_the_current_version(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    replace_contents(target, b"a")
    replace_contents(target, b"b")
    os.link(target, held_path(target))  # killed after its link, before its renames
    replace_contents(target, b"c")
    assert target.read_bytes() == b"c"
    assert sorted(os.listdir(tmp_path)) == [".record.json.spare", "record.json"]


def test_a_writer_killed_between_its_two_renames(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    replace_contents(target, b"a")
    replace_contents(target, b"b")
    os.link(target, held_path(target))
    os.replace(spare_path(target), target)  # the spare (the old "a") became the file ...
    target.write_bytes(b"c")  # ... with its new contents; the held link is left, no spare
    replace_contents(target, b"d")
    assert target.read_bytes() == b"d"
    assert sorted(os.listdir(tmp_path)) == [".record.json.spare", "record.json"]
    assert spare_path(target).read_bytes() == b"c"


def test_a_missing_directory_is_the_callers_to_make(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        replace_contents(tmp_path / "absent" / "record.json", b"x")


def test_remove_takes_the_file_its_spare_and_a_held_link(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    replace_contents(target, b"a")
    replace_contents(target, b"b")
    os.link(target, held_path(target))
    (tmp_path / "other.json").write_bytes(b"kept")
    remove(target)
    assert os.listdir(tmp_path) == ["other.json"]
    remove(target)  # nothing left to remove: fine


def test_mode_applies_to_new_files(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    replace_contents(target, b"a", mode=0o644)
    replace_contents(target, b"b", mode=0o644)
    old = os.umask(0)
    os.umask(old)
    expected = 0o644 & ~old
    assert target.stat().st_mode & 0o777 == expected
    assert spare_path(target).stat().st_mode & 0o777 == expected
