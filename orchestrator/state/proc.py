"""Process identity from /proc: a pid plus its start time names one process for good.

Owned here: reading field 22 of ``/proc/<pid>/stat`` (start time in clock ticks since boot) and
deciding whether a recorded (pid, start time) pair is still the same live process. The reconciler
records the pair when a container starts; the supervisor uses :func:`same_process` to adopt
containers after a restart instead of trusting a pid that may have been reused.
"""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def pid_start_time(pid: int, proc: Path = PROC) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if there is no such process."""
    try:
        raw = (proc / str(pid) / "stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may itself contain ") ": split after the last.
    after_comm = raw[raw.rindex(b")") + 2 :].split()
    # after_comm[0] is field 3 (state); field 22 is therefore index 19.
    return int(after_comm[19])


def pid_state(pid: int, proc: Path = PROC) -> str | None:
    """The one-letter scheduler state of ``pid`` (R, S, D, Z, T, ...), or None if it is gone."""
    try:
        raw = (proc / str(pid) / "stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(b")") + 2 :].split()[0].decode()


def same_process(pid: int, start_time: int, proc: Path = PROC) -> bool:
    """True if ``pid`` is alive (not a zombie) and is the process that started at ``start_time``."""
    current = pid_start_time(pid, proc)
    return current is not None and current == start_time and pid_state(pid, proc) != "Z"
