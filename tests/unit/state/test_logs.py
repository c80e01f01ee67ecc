"""Container log files: JSON lines, rotation by size, merged reading, following across rotation."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from orchestrator.errors import StackError
from orchestrator.state.logs import (
    LogEntry,
    LogOptions,
    LogWriter,
    follow_logs,
    format_entry,
    format_time,
    log_files,
    parse_size,
    parse_time,
    read_logs,
)

T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z in ns


def ticking(start: int = T0, step: int = 1_000_000) -> itertools.count[int]:
    return itertools.count(start, step)


def test_lines_are_json_file_records(tmp_path: Path) -> None:
    clock = ticking()
    writer = LogWriter(tmp_path / "web-1.log", clock_ns=lambda: next(clock))
    writer.write("stdout", b"hello\nwor")
    writer.write("stderr", b"oops\n")
    writer.write("stdout", b"ld\n")
    writer.write("stdout", b"no newline at exit")
    writer.close()
    records = [json.loads(line) for line in (tmp_path / "web-1.log").read_text().splitlines()]
    assert [(r["stream"], r["log"]) for r in records] == [
        ("stdout", "hello\n"),
        ("stderr", "oops\n"),
        ("stdout", "world\n"),
        ("stdout", "no newline at exit"),
    ]
    assert records[0]["time"] == "2025-11-24T16:00:00.000000000Z"


@pytest.mark.parametrize(
    ("text", "size"),
    [("10", 10), ("1k", 1024), ("2m", 2 * 1024**2), ("1.5k", 1536), ("1g", 1024**3), ("3KB", 3072)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_bad_options_are_stack_errors() -> None:
    with pytest.raises(StackError, match="max-size"):
        LogOptions.from_compose({"max-size": "ten"})
    with pytest.raises(StackError, match="max-file"):
        LogOptions.from_compose({"max-size": "1k", "max-file": "0"})


def test_rotation_keeps_max_file_files_and_the_newest_lines(tmp_path: Path) -> None:
    clock = ticking()
    path = tmp_path / "web-1.log"
    writer = LogWriter(
        path, LogOptions.from_compose({"max-size": "300", "max-file": "3"}), lambda: next(clock)
    )
    for i in range(40):
        writer.write("stdout", f"line {i:02d}\n".encode())
    writer.close()
    files = log_files(path)
    assert [f.name for f in files] == ["web-1.log.2", "web-1.log.1", "web-1.log"]
    assert all(f.stat().st_size <= 300 for f in files)
    texts = [e.text for e in read_logs([("web-1", path)])]
    assert texts[-1] == "line 39\n"
    assert texts == sorted(texts)
    assert len(texts) < 40  # the oldest were rotated away


def test_max_file_one_truncates(tmp_path: Path) -> None:
    clock = ticking()
    path = tmp_path / "a.log"
    writer = LogWriter(path, LogOptions(max_size=200, max_file=1), lambda: next(clock))
    for i in range(20):
        writer.write("stdout", f"line {i:02d}\n".encode())
    writer.close()
    assert log_files(path) == [path]
    assert path.stat().st_size <= 200


def test_writer_appends_after_restart(tmp_path: Path) -> None:
    clock = ticking()
    path = tmp_path / "a.log"
    for word in ("first", "second"):
        writer = LogWriter(path, clock_ns=lambda: next(clock))
        writer.write("stdout", f"{word}\n".encode())
        writer.close()
    assert [e.text for e in read_logs([("a", path)])] == ["first\n", "second\n"]


def two_containers(tmp_path: Path) -> list[tuple[str, Path]]:
    clock = ticking()
    web = LogWriter(tmp_path / "web.log", clock_ns=lambda: next(clock))
    db = LogWriter(tmp_path / "db.log", clock_ns=lambda: next(clock))
    for i in range(3):
        web.write("stdout", f"web {i}\n".encode())
        db.write("stdout", f"db {i}\n".encode())
    web.close()
    db.close()
    return [("web-1", tmp_path / "web.log"), ("db-1", tmp_path / "db.log")]


def test_interleaved_by_time_with_tail_since_until(tmp_path: Path) -> None:
    sources = two_containers(tmp_path)
    assert [e.text.strip() for e in read_logs(sources)] == ["web 0", "db 0", "web 1", "db 1", "web 2", "db 2"]
    assert [e.text.strip() for e in read_logs(sources, tail=1)] == ["web 2", "db 2"]
    assert read_logs(sources, tail=0) == []
    since = T0 + 2_000_000
    until = T0 + 4_000_000
    assert [e.text.strip() for e in read_logs(sources, since_ns=since, until_ns=until)] == ["web 1", "db 1"]


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text('{"log":"ok\\n","stream":"stdout","time":"2025-11-24T16:00:00.000000000Z"}\n{"log":"to')
    assert [e.text for e in read_logs([("a", path)])] == ["ok\n"]


def test_time_round_trip() -> None:
    assert parse_time(format_time(T0 + 123)) == T0 + 123
    assert parse_time("2025-11-24T16:00:00.5Z") == T0 + 500_000_000
    assert parse_time("2025-11-24T17:00:00+01:00") == T0


def test_format_entry_like_compose() -> None:
    entry = LogEntry(T0, "stdout", "hi\n", "web-1")
    assert format_entry(entry, prefix_width=6) == "web-1  | hi\n"
    assert format_entry(entry, timestamps=True, prefix=False) == "2025-11-24T16:00:00.000000000Z hi\n"


def test_follow_sees_new_lines_rotation_and_new_containers(tmp_path: Path) -> None:
    clock = ticking()
    path = tmp_path / "web.log"
    writer = LogWriter(path, LogOptions(max_size=250, max_file=5), lambda: next(clock))
    writer.write("stdout", b"history\n")
    sources = [("web-1", path)]
    polls = 0
    script = [
        lambda: writer.write("stdout", b"a\n"),
        lambda: [writer.write("stdout", f"burst {i}\n".encode()) for i in range(6)],  # rotates
        lambda: sources.append(("db-1", tmp_path / "db.log")),
        lambda: LogWriter(tmp_path / "db.log", clock_ns=lambda: next(clock)).write("stdout", b"db up\n"),
    ]

    def keep_going() -> bool:
        nonlocal polls
        if polls < len(script):
            script[polls]()
        polls += 1
        return polls <= len(script) + 1

    seen = [
        (e.container, e.text.strip())
        for e in follow_logs(lambda: list(sources), keep_going=keep_going, sleep=lambda s: None)
    ]
    assert ("web-1", "history") not in seen
    assert seen == [("web-1", "a")] + [("web-1", f"burst {i}") for i in range(6)] + [("db-1", "db up")]
    assert len(log_files(path)) >= 3  # the burst rotated more than once between two polls


def test_follow_from_start_and_last_read_after_stop(tmp_path: Path) -> None:
    clock = ticking()
    path = tmp_path / "job.log"
    writer = LogWriter(path, clock_ns=lambda: next(clock))
    writer.write("stdout", b"early\n")
    calls = 0

    def keep_going() -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            writer.write("stdout", b"last words\n")  # written just as the container exits
            return False
        return True

    seen = [
        e.text
        for e in follow_logs(
            lambda: [("job-1", path)], keep_going=keep_going, sleep=lambda s: None, from_start=True
        )
    ]
    assert seen == ["early\n", "last words\n"]
