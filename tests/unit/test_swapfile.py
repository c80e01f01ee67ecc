"""swapfile: atomic replacement that reuses a file's two inodes, and what a killed writer leaves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.swapfile import InodePool, held_path, overwrite, remove, replace_contents, spare_path


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


def test_a_shorter_version_leaves_nothing_of_a_longer_one(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    for payload in (b"x" * 5000, b"y" * 9000, b"short", b"z" * 4096, b""):
        replace_contents(target, payload)
        assert target.read_bytes() == payload


def test_overwrite_keeps_the_inode_and_cuts_to_length(tmp_path: Path) -> None:
    """A bind-mounted /etc/hosts must keep its inode; opening it with O_TRUNC instead freed and
    reallocated its block on every rewrite (~0.2 ms on ext4 without a journal)."""
    target = tmp_path / "hosts"
    overwrite(target, b"127.0.0.1 localhost\n" * 10)
    inode = target.stat().st_ino
    for payload in (b"172.18.0.2 web\n", b"x" * 6000, b"short\n", b""):
        overwrite(target, payload)
        assert target.read_bytes() == payload
        assert target.stat().st_ino == inode


def test_overwrite_through_an_open_reader_of_the_same_inode(tmp_path: Path) -> None:
    target = tmp_path / "hosts"
    overwrite(target, b"old\n")
    with open(target, "rb") as reader:  # as a container sees its bind-mounted file
        overwrite(target, b"the new contents\n")
        assert reader.read() == b"the new contents\n"


def test_a_pool_hands_back_the_files_it_was_given(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    pool = InodePool(tmp_path / "pool")
    assert not pool.take(tmp_path / "state" / "a")  # empty (and not made yet)
    given = tmp_path / "state" / "old"
    given.write_bytes(b"stale")
    inode = given.stat().st_ino
    pool.give(given)
    assert not given.exists() and len(os.listdir(tmp_path / "pool")) == 1
    assert (tmp_path / "pool").stat().st_mode & 0o777 == 0o700  # old records and specs: root's only
    fresh = tmp_path / "state" / "new"
    assert pool.take(fresh)
    assert fresh.stat().st_ino == inode and fresh.read_bytes() == b"stale"  # the caller writes it
    assert os.listdir(tmp_path / "pool") == []
    pool.give(tmp_path / "state" / "never-made")  # nothing to give: fine
    assert os.listdir(tmp_path / "pool") == []


def test_a_full_pool_removes_what_it_is_given(tmp_path: Path) -> None:
    pool = InodePool(tmp_path / "pool", limit=2)
    for n in range(4):
        (tmp_path / f"f{n}").write_bytes(b"x")
        pool.give(tmp_path / f"f{n}")
    assert len(os.listdir(tmp_path / "pool")) == 2
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == []


def test_a_pool_is_shared_through_its_directory(tmp_path: Path) -> None:
    """Another process (here: another instance) sees the files given before it looked; a file
    someone else took in the meantime is skipped."""
    giver = InodePool(tmp_path / "pool")
    for n in range(3):
        (tmp_path / f"f{n}").write_bytes(b"x")
        giver.give(tmp_path / f"f{n}")
    taker = InodePool(tmp_path / "pool")
    first = sorted(os.listdir(tmp_path / "pool"))
    assert taker.take(tmp_path / "t0")
    remaining = sorted(os.listdir(tmp_path / "pool"))
    os.unlink(tmp_path / "pool" / remaining[0])  # taken behind its back
    assert taker.take(tmp_path / "t1")
    assert not taker.take(tmp_path / "t2")
    assert len(first) == 3 and os.listdir(tmp_path / "pool") == []


def test_taking_into_a_missing_directory_keeps_the_file_pooled(tmp_path: Path) -> None:
    pool = InodePool(tmp_path / "pool")
    (tmp_path / "f").write_bytes(b"x")
    pool.give(tmp_path / "f")
    with pytest.raises(FileNotFoundError):
        pool.take(tmp_path / "absent" / "f")
    assert pool.take(tmp_path / "g")


def test_records_made_after_removed_ones_reuse_their_inodes(tmp_path: Path) -> None:
    pool = InodePool(tmp_path / "pool")
    target = tmp_path / "web-1.json"
    replace_contents(target, b"created", pool=pool)
    replace_contents(target, b"started", pool=pool)
    inodes = {target.stat().st_ino, spare_path(target).stat().st_ino}
    remove(target, pool)
    assert not target.exists() and not spare_path(target).exists()
    replace_contents(target, b"created again, longer than before", pool=pool)
    replace_contents(target, b"started", pool=pool)
    assert {target.stat().st_ino, spare_path(target).stat().st_ino} == inodes
    assert target.read_bytes() == b"started"
    assert target.stat().st_mode & 0o777 == 0o600


def test_overwrite_from_the_pool_takes_the_mode_asked_for(tmp_path: Path) -> None:
    pool = InodePool(tmp_path / "pool")
    (tmp_path / "old").write_bytes(b"old and longer contents")
    os.chmod(tmp_path / "old", 0o640)
    pool.give(tmp_path / "old")
    overwrite(tmp_path / "spec", b"new", 0o600, pool)
    assert (tmp_path / "spec").read_bytes() == b"new"
    assert (tmp_path / "spec").stat().st_mode & 0o777 == 0o600


def test_a_filesystem_without_hard_links_still_gets_atomic_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)
    target = tmp_path / "record.json"
    for payload in (b"one", b"two", b"three"):
        replace_contents(target, payload)
        assert target.read_bytes() == payload
    assert os.listdir(tmp_path) == ["record.json"]
