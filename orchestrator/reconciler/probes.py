"""orc's own probes (``x-orc``): HTTP/TCP probes run by orc inside a container's network
namespace, log-line readiness, and restart on unhealthy.

Owned here: the :class:`ProbeDriver` protocol (the side effects: a probe connection made from
inside a container's netns, and reading a container's new output lines), its real
implementation :class:`NetnsProbeDriver` and its recording fake :class:`FakeProbeDriver`;
:func:`with_orc_health` (a service's x-orc probe or ready_log becomes its health check, replacing
Compose's ``healthcheck:`` and the image's HEALTHCHECK), :func:`validate_orc_extensions` (``up``
refuses a project whose x-orc blocks are wrong), :func:`monitor_ready_log` and
:func:`unhealthy_restart_decision` (Docker's restart backoff, applied to restarts orc makes
because a container turned unhealthy). The reconciler's supervision calls them.

Why a netns socket: the probe must not need curl or wget in the image, and must reach a server
that listens on the container's own loopback. A socket stays in the network namespace it was
created in, so a short-lived thread enters the container's netns (``setns``), creates the socket,
goes back to the supervisor's netns, and the socket is then driven from anyio like any other.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import anyio

from orchestrator.errors import Problem, StackError, TemporaryError
from orchestrator.model.orc_extension import HttpProbe, OrcExtension, OrcProbe, TcpProbe, parse_orc_extension
from orchestrator.planner.restart import (
    BACKOFF_MAX,
    BACKOFF_RESET_AFTER,
    BACKOFF_START,
    RestartDecision,
    RestartTracker,
)
from orchestrator.reconciler.clock import Clock
from orchestrator.reconciler.health import HEALTHY, HealthCheck, Probe
from orchestrator.reconciler.ports import ExecResult
from orchestrator.reconciler.project import ProjectSpec, ServiceBehaviour
from orchestrator.runtime import fdio
from orchestrator.state.logs import parse_time

# The health check test of a service whose health comes from x-orc: never executed (the
# supervisor dispatches on the extension), shown where a check's test is shown.
PROBE_TEST_PREFIX = ("CMD", "x-orc")
READY_LOG_POLL = 0.2
READ_LIMIT = 64 * 1024
_CLONE_NEWNET = 0x40000000

OutputReader = Callable[[], list[str]]
Report = Callable[[str, ExecResult], None]


class ProbeDriver(Protocol):
    """The side effects of orc's probes."""

    async def connect(self, pid: int, target: HttpProbe | TcpProbe) -> ExecResult:
        """Probe ``target`` on the loopback of the network namespace of process ``pid``;
        exit code 0 when healthy. The caller bounds the time it may take."""
        ...

    def output_reader(self, log_path: str, since: float) -> OutputReader:
        """A callable returning the lines the container wrote since wall time ``since`` that
        the previous call did not return."""
        ...


# --- health from the x-orc block -----------------------------------------------------------


def extension_of(behaviour: ServiceBehaviour) -> OrcExtension:
    """The parsed x-orc block of the service behind ``behaviour`` (empty when absent or invalid:
    ``up`` already refused invalid blocks; adopted containers keep running as they were)."""
    source = behaviour.source
    raw = getattr(source, "orc_extension", None)
    name = str(getattr(source, "name", "?"))
    try:
        return parse_orc_extension(name, raw)
    except StackError:
        return OrcExtension()


def validate_orc_extensions(spec: ProjectSpec) -> None:
    """Raise one StackError listing every problem of every service's x-orc block."""
    problems: list[Problem] = []
    for service in spec.desired.services:
        source = spec.behaviour(service.name).source
        try:
            parse_orc_extension(service.name, getattr(source, "orc_extension", None))
        except StackError as exc:
            problems.extend(exc.problems)
    if problems:
        raise StackError(problems)


def health_check_for(extension: OrcExtension) -> HealthCheck | None:
    """The HealthCheck (timings; a descriptive test) standing for an x-orc health source."""
    if extension.probe is not None:
        probe = extension.probe
        timings = probe.timings
        return HealthCheck(
            test=(*PROBE_TEST_PREFIX, probe.target.describe()),
            interval=timings.interval,
            timeout=timings.timeout,
            retries=timings.retries,
            start_period=timings.start_period,
            start_interval=timings.start_interval,
        )
    if extension.ready_log is not None:
        return HealthCheck(test=(*PROBE_TEST_PREFIX, f"ready_log {extension.ready_log}"))
    return None


def with_orc_health(behaviour: ServiceBehaviour) -> ServiceBehaviour:
    """``behaviour`` with its x-orc probe or ready_log as its health check, if it has one."""
    check = health_check_for(extension_of(behaviour))
    if check is None:
        return behaviour
    return replace(behaviour, healthcheck=check)


def probe_function(driver: ProbeDriver, pid: Callable[[], int | None], probe: OrcProbe) -> Probe:
    """A :data:`orchestrator.reconciler.health.Probe` that runs ``probe`` instead of an exec."""

    async def run(_argv: Sequence[str], _timeout: float) -> ExecResult:
        current = pid()
        if current is None:
            return ExecResult(-1, "container is not running")
        return await driver.connect(current, probe.target)

    return run


async def monitor_ready_log(
    pattern: str, read: OutputReader, clock: Clock, report: Report, poll: float = READY_LOG_POLL
) -> None:
    """Read new output every ``poll`` seconds until a line matches; report healthy, and return."""
    regex = re.compile(pattern)
    while True:
        for line in read():
            if regex.search(line):
                report(HEALTHY, ExecResult(0, line))
                return
        await clock.sleep(poll)


def unhealthy_restart_decision(
    tracker: RestartTracker, *, started_at: float, exited_at: float
) -> RestartDecision:
    """A restart because the container turned unhealthy: always made (whatever the restart
    policy), after the policy's fixed ``delay`` or Docker's backoff (100 ms doubling to 1 min,
    back to 100 ms after a run of 10 s or more), counted in the tracker."""
    if exited_at - started_at >= BACKOFF_RESET_AFTER:
        tracker.backoff = 0.0
    tracker.backoff = BACKOFF_START if tracker.backoff == 0.0 else min(tracker.backoff * 2, BACKOFF_MAX)
    delay = tracker.policy.delay if tracker.policy.delay is not None else tracker.backoff
    tracker.restart_count += 1
    tracker.restart_times.append(exited_at + delay)
    return RestartDecision(True, delay, "unhealthy (x-orc restart_on_unhealthy)")


# --- the real driver -----------------------------------------------------------------------


class NetnsProbeDriver(ProbeDriver):
    """Probes from inside the container's network namespace; output read from its log file."""

    async def connect(self, pid: int, target: HttpProbe | TcpProbe) -> ExecResult:
        sock = await anyio.to_thread.run_sync(_socket_in_netns_of, pid)
        try:
            sock.setblocking(False)
            try:
                sock.connect(("127.0.0.1", target.port))
            except BlockingIOError:
                await fdio.wait_writable(sock)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    return ExecResult(1, f"connect to 127.0.0.1:{target.port}: {os.strerror(error)}")
            except OSError as exc:
                return ExecResult(1, f"connect to 127.0.0.1:{target.port}: {exc.strerror or exc}")
            if isinstance(target, TcpProbe):
                return ExecResult(0, f"connected to 127.0.0.1:{target.port}")
            return await _http_exchange(sock, target)
        finally:
            sock.close()

    def output_reader(self, log_path: str, since: float) -> OutputReader:
        return _LogTail(log_path, int(since * 1e9))


def _socket_in_netns_of(pid: int) -> socket.socket:
    """Create a TCP socket in the netns of ``pid``, in a thread of its own: even if switching
    back failed, no pooled thread is left in the container's namespace."""
    result: list[socket.socket | BaseException] = []

    def work() -> None:
        try:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _setns(target)
                    try:
                        result.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    finally:
                        _setns(own)
                finally:
                    os.close(target)
            finally:
                os.close(own)
        except BaseException as exc:  # handed to the caller below
            result.append(exc)

    thread = threading.Thread(target=work, name=f"orc-probe-netns-{pid}", daemon=True)
    thread.start()
    thread.join()
    outcome = result[0] if result else TemporaryError("probe thread ended without a socket")
    if isinstance(outcome, socket.socket):
        return outcome
    if isinstance(outcome, (FileNotFoundError, ProcessLookupError)):
        raise TemporaryError(f"container process {pid} is gone") from outcome
    if isinstance(outcome, OSError):
        raise TemporaryError(f"cannot enter the network namespace of {pid}: {outcome}") from outcome
    raise outcome


_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


async def _http_exchange(sock: socket.socket, target: HttpProbe) -> ExecResult:
    host = target.host or f"127.0.0.1:{target.port}"
    request = (
        f"GET {target.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: orc-probe\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    try:
        view = memoryview(request)
        while view:
            await fdio.wait_writable(sock)
            sent = sock.send(view)
            view = view[sent:]
        received = b""
        while b"\r\n" not in received and len(received) < READ_LIMIT:
            await fdio.wait_readable(sock)
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    except OSError as exc:
        return ExecResult(1, f"http {target.path}: {exc.strerror or exc}")
    status_line = received.split(b"\r\n", 1)[0].decode("latin-1")
    match = re.match(r"^HTTP/\d(?:\.\d)? (\d{3})", status_line)
    if match is None:
        return ExecResult(1, f"http {target.path}: not an HTTP response: {status_line[:80]!r}")
    status = int(match.group(1))
    healthy = target.status_min <= status <= target.status_max
    return ExecResult(0 if healthy else 1, f"http {target.path}: {status_line.strip()}")


@dataclass
class _LogTail:
    """New complete lines of a json-file log since a time, remembering how far it read."""

    path: str
    since_ns: int
    offset: int = 0

    def __call__(self) -> list[str]:
        try:
            with open(self.path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size < self.offset:  # rotated: the file started over
                    self.offset = 0
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        lines = []
        for raw in data[:end].splitlines():
            try:
                entry = json.loads(raw)
                if parse_time(entry["time"]) < self.since_ns:
                    continue
                lines.append(str(entry["log"]).rstrip("\n"))
            except (ValueError, KeyError, TypeError):
                continue
        return lines


# --- the recording fake --------------------------------------------------------------------


@dataclass
class FakeProbeDriver(ProbeDriver):
    """Answers probes from ``answers`` (by probe number, 1-based, per pid-less service port;
    ``default`` past them) and output from ``output`` (lines handed out once); records calls."""

    answers: dict[int, int] = field(default_factory=dict)
    default: int = 0
    delay: float = 0.0
    clock: Clock | None = None
    output: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    async def connect(self, pid: int, target: HttpProbe | TcpProbe) -> ExecResult:
        self.calls.append(f"connect {pid} {target.describe()}")
        if self.delay and self.clock is not None:
            await self.clock.sleep(self.delay)
        number = sum(1 for c in self.calls if c.startswith("connect "))
        code = self.answers.get(number, self.default)
        return ExecResult(code, "ok" if code == 0 else "probe failed")

    def output_reader(self, log_path: str, since: float) -> OutputReader:
        self.calls.append(f"read {log_path}")

        def read() -> list[str]:
            lines, self.output[:] = list(self.output), []
            return lines

        return read
