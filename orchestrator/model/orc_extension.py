"""A service's ``x-orc:`` block, parsed and validated: orc's features beyond Compose.

Owned here: :class:`OrcExtension` (``rootfs``, ``probe``, ``ready_log``, ``restart_on_unhealthy``),
:class:`HttpProbe`, :class:`TcpProbe`, :class:`ProbeTimings` and :func:`parse_orc_extension`,
which turns the raw mapping the loader keeps (``Service.orc_extension``) into those frozen
objects or raises a :class:`~orchestrator.errors.StackError` whose problems name the service and
the dotted key (``services.web.x-orc.probe.http.port``). The reconciler calls it at ``up`` and
when it decides how a container's health is watched. Pure: no I/O.

Shape::

    x-orc:
      rootfs: DIR | host
      probe:
        http: {port: 8080, path: /health, status: 200-399, host: example.org}
        # or tcp: {port: 5432}
        interval: 30s        # Compose's healthcheck timing keys and defaults
        timeout: 30s
        retries: 3
        start_period: 0s
        start_interval: 5s
      ready_log: "regex"      # healthy once a line of the container's output matches
      restart_on_unhealthy: true
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from orchestrator.errors import Problem, StackError
from orchestrator.model.units import parse_duration

KNOWN_KEYS = ("rootfs", "probe", "ready_log", "restart_on_unhealthy")
_TIMING_KEYS = ("interval", "timeout", "retries", "start_period", "start_interval")
_STATUS_RANGE = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$")

_Report = Callable[[str, str], None]
_Report1 = Callable[[str], None]

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_START_INTERVAL = 5.0


@dataclass(frozen=True)
class HttpProbe:
    """``GET path`` on ``port`` inside the container; healthy when the status is in
    ``status_min..status_max`` (inclusive)."""

    port: int
    path: str = "/"
    status_min: int = 200
    status_max: int = 399
    host: str | None = None

    def describe(self) -> str:
        return f"http :{self.port}{self.path}"


@dataclass(frozen=True)
class TcpProbe:
    """A TCP connection to ``port`` inside the container is accepted."""

    port: int

    def describe(self) -> str:
        return f"tcp :{self.port}"


@dataclass(frozen=True)
class ProbeTimings:
    """Seconds, with the defaults of a Compose healthcheck."""

    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    start_period: float = 0.0
    start_interval: float = DEFAULT_START_INTERVAL


@dataclass(frozen=True)
class OrcProbe:
    target: HttpProbe | TcpProbe
    timings: ProbeTimings = ProbeTimings()

    @property
    def kind(self) -> str:
        return "http" if isinstance(self.target, HttpProbe) else "tcp"


@dataclass(frozen=True)
class OrcExtension:
    rootfs: str | None = None
    probe: OrcProbe | None = None
    ready_log: str | None = None
    restart_on_unhealthy: bool = False

    @property
    def replaces_healthcheck(self) -> bool:
        """A probe or ready_log is the container's health source instead of Compose's check."""
        return self.probe is not None or self.ready_log is not None


def parse_orc_extension(service: str, raw: object) -> OrcExtension:
    """The ``x-orc`` block of ``service``; every problem found is raised together."""
    if raw is None:
        return OrcExtension()
    base = f"services.{service}.x-orc"
    problems: list[Problem] = []

    def problem(key: str, message: str) -> None:
        problems.append(Problem(message, path=f"{base}.{key}" if key else base))

    if not isinstance(raw, Mapping):
        raise StackError(Problem(f"must be a mapping, got {_kind(raw)}", path=base))
    for key in raw:
        if key not in KNOWN_KEYS:
            problem(str(key), f"unknown x-orc key (known: {', '.join(KNOWN_KEYS)})")

    rootfs = raw.get("rootfs")
    if rootfs is not None and (not isinstance(rootfs, str) or not rootfs):
        problem("rootfs", "must be a directory path or 'host'")
        rootfs = None

    ready_log = raw.get("ready_log")
    if ready_log is not None:
        if not isinstance(ready_log, str) or not ready_log:
            problem("ready_log", "must be a non-empty regular expression string")
            ready_log = None
        else:
            try:
                re.compile(ready_log)
            except re.error as exc:
                problem("ready_log", f"invalid regular expression {ready_log!r}: {exc}")
                ready_log = None

    restart = raw.get("restart_on_unhealthy", False)
    if not isinstance(restart, bool):
        problem("restart_on_unhealthy", f"must be true or false, got {restart!r}")
        restart = False

    probe = None
    if "probe" in raw:
        probe = _parse_probe(raw["probe"], lambda key, message: problem(f"probe.{key}".rstrip("."), message))
    if probe is not None and ready_log is not None:
        problem("", "set either probe or ready_log, not both (each is the service's health source)")
    if problems:
        raise StackError(problems)
    return OrcExtension(rootfs=rootfs, probe=probe, ready_log=ready_log, restart_on_unhealthy=bool(restart))


def _parse_probe(raw: object, problem: _Report) -> OrcProbe | None:
    if not isinstance(raw, Mapping):
        problem("", f"must be a mapping with http or tcp, got {_kind(raw)}")
        return None
    kinds = [k for k in ("http", "tcp") if k in raw]
    for key in raw:
        if key not in ("http", "tcp", *_TIMING_KEYS):
            problem(str(key), f"unknown probe key (known: http, tcp, {', '.join(_TIMING_KEYS)})")
    if len(kinds) != 1:
        problem("", "needs exactly one of http or tcp")
        return None
    kind = kinds[0]
    body = raw[kind]
    if not isinstance(body, Mapping):
        problem(kind, f"must be a mapping with a port, got {_kind(body)}")
        return None
    port = _port(body.get("port"), lambda message: problem(f"{kind}.port", message))
    target: HttpProbe | TcpProbe | None = None
    if kind == "tcp":
        for key in body:
            if key != "port":
                problem(f"tcp.{key}", "unknown tcp probe key (known: port)")
        target = TcpProbe(port) if port is not None else None
    else:
        target = _http(body, port, lambda key, message: problem(f"http.{key}", message))
    timings = _timings(raw, problem)
    if target is None or timings is None:
        return None
    return OrcProbe(target, timings)


def _http(body: Mapping[object, object], port: int | None, problem: _Report) -> HttpProbe | None:
    ok = port is not None
    for key in body:
        if key not in ("port", "path", "status", "host"):
            problem(str(key), "unknown http probe key (known: port, path, status, host)")
            ok = False
    path = body.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in " \r\n"):
        problem("path", f"must be an absolute request path without spaces, got {path!r}")
        ok = False
    host = body.get("host")
    if host is not None and (not isinstance(host, str) or not host or any(c in host for c in " \r\n")):
        problem("host", f"must be a host name, got {host!r}")
        ok = False
    low, high = 200, 399
    status = body.get("status")
    if status is not None:
        match = _STATUS_RANGE.match(str(status)) if isinstance(status, (int, str)) else None
        if match is None or isinstance(status, bool):
            problem("status", f"must be a status code or a range like 200-399, got {status!r}")
            ok = False
        else:
            low = int(match.group(1))
            high = int(match.group(2) or match.group(1))
            if not 100 <= low <= high <= 599:
                problem("status", f"range {status!r} must lie within 100-599, low to high")
                ok = False
    if not ok or port is None:
        return None
    return HttpProbe(
        port=port, path=str(path), status_min=low, status_max=high, host=str(host) if host else None
    )


def _port(value: object, problem: _Report1) -> int | None:
    if value is None:
        problem("is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        problem(f"must be a port number, got {value!r}")
        return None
    port = int(value)
    if not 1 <= port <= 65535:
        problem(f"must be within 1-65535, got {port}")
        return None
    return port


def _timings(raw: Mapping[object, object], problem: _Report) -> ProbeTimings | None:
    values: dict[str, float] = {}
    ok = True
    for key in ("interval", "timeout", "start_period", "start_interval"):
        value = raw.get(key)
        if value is None:
            continue
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            problem(key, f"invalid duration {value!r}: {exc}")
            ok = False
            continue
        if seconds < 0 or (seconds == 0 and key != "start_period"):
            problem(key, f"must be positive, got {value!r}")
            ok = False
            continue
        values[key] = seconds
    retries = raw.get("retries", DEFAULT_RETRIES)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
        problem("retries", f"must be a whole number of at least 1, got {retries!r}")
        ok = False
        retries = DEFAULT_RETRIES
    if not ok:
        return None
    return ProbeTimings(
        interval=values.get("interval", DEFAULT_INTERVAL),
        timeout=values.get("timeout", DEFAULT_TIMEOUT),
        retries=retries,
        start_period=values.get("start_period", 0.0),
        start_interval=values.get("start_interval", DEFAULT_START_INTERVAL),
    )


def _kind(value: object) -> str:
    return type(value).__name__
