"""The CLI's light path to a supervisor (``daemon.spawn``): roots, the liveness check, the lock."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.daemon import spawn
from orchestrator.runtime import fsflags
from orchestrator.state import projectlock
from orchestrator.state.proc import pid_start_time
from orchestrator.state.store import FileStateStore


def test_roots_for_an_option_or_the_defaults(tmp_path: Path) -> None:
    assert spawn.roots_for(str(tmp_path)) == (tmp_path / "run", tmp_path / "lib")
    assert spawn.roots_for(None) == (Path("/run/orc"), Path("/var/lib/orc"))


def _record(run_root: Path, project: str, **fields: object) -> None:
    (run_root / project).mkdir(parents=True, exist_ok=True)
    (run_root / project / "project.json").write_text(json.dumps({"name": project, **fields}))


def test_a_live_supervisor_is_its_recorded_process_with_its_socket(tmp_path: Path) -> None:
    assert spawn.listening_supervisor(tmp_path, "p") is None  # no record
    _record(tmp_path, "p", supervisor_pid=os.getpid(), supervisor_start_time=pid_start_time(os.getpid()))
    assert spawn.listening_supervisor(tmp_path, "p") is None  # no socket yet
    spawn.socket_path(tmp_path, "p").touch()
    assert spawn.listening_supervisor(tmp_path, "p") == tmp_path / "p" / "supervisor.sock"
    # the pid reused by another process (another start time), a corrupt record: none
    _record(tmp_path, "p", supervisor_pid=os.getpid(), supervisor_start_time=1)
    assert spawn.listening_supervisor(tmp_path, "p") is None
    (tmp_path / "p" / "project.json").write_text("{not json")
    assert spawn.listening_supervisor(tmp_path, "p") is None


def test_a_record_read_across_a_rewrite_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """project.json is rewritten through a spare inode (``swapfile``): a reader that held it
    open across the next rewrite reads a mix once; that is no reason to start a second
    supervisor."""
    _record(tmp_path, "p", supervisor_pid=os.getpid(), supervisor_start_time=pid_start_time(os.getpid()))
    spawn.socket_path(tmp_path, "p").touch()
    real = json.loads
    calls: list[bytes] = []

    def torn_once(text: bytes) -> object:
        calls.append(text)
        return real(b'{"name": "p", "super' if len(calls) == 1 else text)

    monkeypatch.setattr(spawn.json, "loads", torn_once)
    assert spawn.listening_supervisor(tmp_path, "p") == tmp_path / "p" / "supervisor.sock"
    assert len(calls) == 2


def test_begin_early_leaves_a_locked_project_to_the_verb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    monkeypatch.setattr(spawn, "start_supervisor", lambda *a: started.append(a[2]) or (lambda: Path("/x")))
    with FileStateStore(tmp_path).lock("p"):
        assert spawn.begin_early(tmp_path, tmp_path / "lib", "p") is None
        # the holder's pid stays in the lock file, for the next one's "busy" message
        assert (tmp_path / ".p.lock").read_text() == str(os.getpid())
    assert started == []
    finish = spawn.begin_early(tmp_path, tmp_path / "lib", "p")
    assert finish is not None and started == ["p"]
    # the store's lock is the same lock: held until the supervisor listens
    with pytest.raises(Exception, match="busy"), FileStateStore(tmp_path).lock("p"):
        pass
    assert finish() == Path("/x")
    with FileStateStore(tmp_path).lock("p"):
        pass


def test_the_lock_file_keeps_its_block_and_the_last_holders_pid(tmp_path: Path) -> None:
    """Emptying the file at every take and release freed its block each time (and the next pid
    took one again): ~0.2 ms each on ext4 without a journal."""
    fd = projectlock.open_lock(tmp_path, "p")
    try:
        os.pwrite(fd, b"12345678901234567890", 0)  # a longer pid text, left by someone
        assert projectlock.try_take(fd)
        assert (tmp_path / ".p.lock").read_text() == str(os.getpid())
        projectlock.release(fd)
        assert (tmp_path / ".p.lock").read_text() == str(os.getpid())
    finally:
        os.close(fd)


def test_the_lock_marks_the_run_root_as_a_top_directory(tmp_path: Path) -> None:
    if fsflags.inode_flags(tmp_path) is None:
        pytest.skip(f"{tmp_path}'s filesystem has no inode flags")
    os.close(projectlock.open_lock(tmp_path / "run", "p"))  # made here
    assert (fsflags.inode_flags(tmp_path / "run") or 0) & fsflags.FS_TOPDIR_FL
    (tmp_path / "old").mkdir()  # made before, by something else
    os.close(projectlock.open_lock(tmp_path / "old", "p"))
    assert (fsflags.inode_flags(tmp_path / "old") or 0) & fsflags.FS_TOPDIR_FL


def test_begin_early_refuses_names_that_are_no_state_file_names(tmp_path: Path) -> None:
    assert spawn.begin_early(tmp_path, tmp_path / "lib", "../escape") is None
    assert list(tmp_path.iterdir()) == []
