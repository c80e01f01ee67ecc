"""Container logs on disk: one JSON-lines file per container, rotated by size, read back merged.

Owned here: :class:`LogWriter` (the supervisor feeds it the bytes a container writes to stdout
and stderr; it splits them into lines and appends ``{"log", "stream", "time"}`` records, the
format of Docker's ``json-file`` driver, keeping an unfinished line in ``<name>.log.partial`` so a
killed supervisor's successor completes it, rotating ``<name>.log`` → ``.log.1`` → ... when
``logging.options.max-size`` is reached and keeping ``max-file`` files in all), :func:`read_logs`
(entries of several containers interleaved by time, with ``--tail``/``--since``/``--until``),
:func:`follow_logs` (keeps reading as the files grow, across rotation and across a container being
restarted or recreated under the same name) and :func:`format_entry` (Compose's ``name  | text``).

The CLI's ``orc logs`` and the supervisor's log streaming call the readers; the reconciler owns
the writers. Clocks are injected: the writer takes a nanosecond clock, the follower a sleep.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import PermanentError, StackError
from orchestrator.timestamps import format_nanos, parse_nanos

DEFAULT_MAX_FILE = 1
_PARTIAL_FLUSH = 16 * 1024
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """``max-size`` as Docker reads it: a number with an optional k/m/g/t suffix (powers of 1024)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match:
        raise StackError(f"invalid logging max-size {text!r}: expected a size such as 10m or 512k")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** "_kmgt".index(unit or "_"))


@dataclass(frozen=True)
class LogOptions:
    """``logging.options`` of a service: no ``max_size`` means the file grows without bound."""

    max_size: int | None = None
    max_file: int = DEFAULT_MAX_FILE

    @classmethod
    def from_compose(cls, options: dict[str, str] | None) -> LogOptions:
        options = options or {}
        max_size = parse_size(options["max-size"]) if "max-size" in options else None
        raw_files = options.get("max-file", str(DEFAULT_MAX_FILE))
        if not str(raw_files).isdigit() or int(raw_files) < 1:
            raise StackError(f"invalid logging max-file {raw_files!r}: expected a positive number")
        if max_size is not None and max_size <= 0:
            raise StackError("invalid logging max-size: must be positive")
        return cls(max_size=max_size, max_file=int(raw_files))


@dataclass(frozen=True)
class LogEntry:
    """One line a container wrote. ``time_ns`` is nanoseconds since the epoch; ``text`` keeps its
    trailing newline (absent when the process ended without one)."""

    time_ns: int
    stream: str
    text: str
    container: str = ""

    @property
    def timestamp(self) -> str:
        return format_time(self.time_ns)


def format_time(time_ns: int) -> str:
    """RFC 3339 with nanoseconds in UTC, as Docker prints log timestamps."""
    return format_nanos(time_ns)


def parse_time(text: str) -> int:
    """Inverse of :func:`format_time` (also accepts fewer fraction digits and ``+00:00``)."""
    return parse_nanos(text)


class LogWriter:
    """Appends a container's output to ``path`` (rotating by size). Not thread-safe: one per
    container, fed by the one task that reads the container's pipes."""

    def __init__(
        self, path: Path, options: LogOptions | None = None, clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.path = Path(path)
        self.options = options or LogOptions()
        self._clock_ns = clock_ns
        self._partial: dict[str, bytes] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the writer
        self._size = self._file.tell()
        # A line without its newline yet lives only in memory; it is also kept in this side file
        # so that a writer in a process killed meanwhile hands it to the next writer (which reads
        # the rest of the line from the same pipe).
        self._partial_path = self.path.with_name(self.path.name + ".partial")
        self._partial_saved = False
        try:
            saved = json.loads(self._partial_path.read_bytes())
            self._partial = {str(k): str(v).encode("latin-1") for k, v in saved.items()}
            self._partial_saved = True
        except (OSError, ValueError, AttributeError):
            pass

    def write(self, stream: str, data: bytes) -> None:
        """Record ``data`` read from ``stream`` (stdout or stderr); complete lines are written now,
        a trailing partial line waits for its newline (or :meth:`close`)."""
        buffered = self._partial.pop(stream, b"") + data
        *lines, rest = buffered.split(b"\n")
        now = self._clock_ns()
        for line in lines:
            self._append(stream, line + b"\n", now)
        if len(rest) >= _PARTIAL_FLUSH:
            self._append(stream, rest, now)
        elif rest:
            self._partial[stream] = rest
        if self._partial or self._partial_saved:
            self._save_partial()

    def _save_partial(self) -> None:
        if not self._partial:
            self._partial_path.unlink(missing_ok=True)
            self._partial_saved = False
            return
        text = json.dumps({k: v.decode("latin-1") for k, v in self._partial.items()})
        temporary = self._partial_path.with_name(self._partial_path.name + ".tmp")
        temporary.write_text(text)
        os.replace(temporary, self._partial_path)
        self._partial_saved = True

    def close(self) -> None:
        now = self._clock_ns()
        for stream, rest in sorted(self._partial.items()):
            self._append(stream, rest, now)
        self._partial.clear()
        self._partial_path.unlink(missing_ok=True)
        self._file.close()

    def _append(self, stream: str, raw: bytes, now: int) -> None:
        record = {"log": raw.decode(errors="replace"), "stream": stream, "time": format_time(now)}
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        limit = self.options.max_size
        if limit is not None and self._size > 0 and self._size + len(line) > limit:
            self._rotate()
        try:
            self._file.write(line)
        except OSError as exc:
            raise PermanentError(f"cannot write log {self.path}: {exc.strerror}") from exc
        self._size += len(line)

    def _rotate(self) -> None:
        self._file.close()
        keep = self.options.max_file
        if keep <= 1:
            self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115
        else:
            for index in range(keep - 1, 0, -1):
                older = _rotated(self.path, index)
                if index == keep - 1:
                    older.unlink(missing_ok=True)
                source = self.path if index == 1 else _rotated(self.path, index - 1)
                if source.exists():
                    os.replace(source, older)
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
        self._size = 0


def _rotated(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")


def log_files(path: Path) -> list[Path]:
    """The current log file and its rotated predecessors, oldest first."""
    older = []
    index = 1
    while _rotated(path, index).exists():
        older.append(_rotated(path, index))
        index += 1
    return [*reversed(older), *([path] if path.exists() else [])]


def _parse_lines(lines: Iterable[bytes], container: str) -> Iterator[LogEntry]:
    for raw in lines:
        if not raw.endswith(b"\n"):
            continue  # a record still being written
        try:
            record = json.loads(raw)
            yield LogEntry(parse_time(record["time"]), record["stream"], record["log"], container)
        except (ValueError, KeyError, TypeError):
            continue  # a torn line from a crash: skip it rather than stop reading


def container_entries(path: Path, container: str = "") -> Iterator[LogEntry]:
    """Every entry of one container's logs, oldest first, across rotated files."""
    for file in log_files(path):
        try:
            with open(file, "rb") as handle:
                yield from _parse_lines(handle, container)
        except FileNotFoundError:
            continue  # rotated away while we were reading


def read_logs(
    sources: Sequence[tuple[str, Path]],
    *,
    tail: int | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> list[LogEntry]:
    """Entries of several containers (``(name, path)`` pairs) merged by time.

    ``tail`` keeps the last N lines of each container (as Compose does), after the time filter.
    """
    per_container = []
    for name, path in sources:
        entries: Iterable[LogEntry] = (
            e
            for e in container_entries(path, name)
            if (since_ns is None or e.time_ns >= since_ns) and (until_ns is None or e.time_ns < until_ns)
        )
        if tail is not None:
            entries = deque(entries, maxlen=tail) if tail > 0 else []
        per_container.append(list(entries))
    return list(heapq.merge(*per_container, key=lambda e: e.time_ns))


class _Cursor:
    """Where a follower is in one container's current log file."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.inode: int | None = None
        self.offset = 0
        self.pending = b""

    def start_at_end(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        self.inode, self.offset = st.st_ino, st.st_size

    def read_new(self) -> list[LogEntry]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        out: list[LogEntry] = []
        if self.inode is not None and st.st_ino != self.inode:
            # Rotated (perhaps more than once) or recreated: finish the file we were reading, now
            # .N, then read the files rotated after it in full, oldest first.
            rotated = log_files(self.path)[:-1]
            inodes: list[int | None] = []
            for file in rotated:
                try:
                    inodes.append(file.stat().st_ino)
                except FileNotFoundError:
                    inodes.append(None)
            if self.inode in inodes:
                start = inodes.index(self.inode)
                out.extend(self._read(rotated[start], self.offset))
                for newer in rotated[start + 1 :]:
                    out.extend(self._read(newer, 0))
            self.offset, self.pending = 0, b""
        elif st.st_size < self.offset:
            self.offset, self.pending = 0, b""  # truncated in place (max-file 1)
        self.inode = st.st_ino
        out.extend(self._read(self.path, self.offset, advance=True))
        return out

    def _read(self, path: Path, offset: int, advance: bool = False) -> list[LogEntry]:
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = self.pending + handle.read() if advance else handle.read()
        except FileNotFoundError:
            return []
        if advance:
            complete, _, rest = data.rpartition(b"\n")
            self.offset += len(data) - len(self.pending)
            self.pending = rest
            data = complete + b"\n" if complete else b""
        return list(_parse_lines(data.splitlines(keepends=True), self.name))


def follow_logs(
    sources: Callable[[], Sequence[tuple[str, Path]]],
    *,
    keep_going: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
    poll_interval: float = 0.1,
    until_ns: int | None = None,
    from_start: bool = False,
) -> Iterator[LogEntry]:
    """New entries as they are written, for containers ``sources()`` lists at each poll (so
    containers that appear later, or are recreated, are picked up). Stops when ``keep_going()``
    turns false (after one last read, so the final lines are not lost) or an entry reaches
    ``until_ns``. Starts at the current end of each file (print history first with
    :func:`read_logs`), or at the start of each current file with ``from_start``."""
    cursors: dict[str, _Cursor] = {}
    for name, path in sources():
        cursor = _Cursor(name, path)
        if not from_start:
            cursor.start_at_end()
        cursors[name] = cursor
    while True:
        going = keep_going()
        for name, path in sources():
            if name not in cursors:
                cursors[name] = _Cursor(name, path)
        batch = sorted((e for cursor in cursors.values() for e in cursor.read_new()), key=lambda e: e.time_ns)
        for entry in batch:
            if until_ns is not None and entry.time_ns >= until_ns:
                return
            yield entry
        if not going:
            return
        if not batch:
            sleep(poll_interval)


def format_entry(
    entry: LogEntry, *, prefix_width: int = 0, timestamps: bool = False, prefix: bool = True
) -> str:
    """One output line as ``docker compose logs`` prints it: ``web-1  | text``."""
    text = entry.text if entry.text.endswith("\n") else entry.text + "\n"
    if timestamps:
        text = f"{entry.timestamp} {text}"
    if not prefix:
        return text
    return f"{entry.container.ljust(prefix_width)} | {text}"
