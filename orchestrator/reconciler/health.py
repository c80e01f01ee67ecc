"""Health checks: the config (``healthcheck:``) and the probe loop Docker runs for it.

Owned here: :class:`HealthCheck` (CMD / CMD-SHELL / NONE, interval, timeout, retries,
start_period, start_interval, disable, with Docker's defaults) and :func:`monitor_health`, the
per-container loop the supervisor runs while a container is up. The probe itself is injected
(the runtime's exec), as is the clock.

Docker's rules, kept here: the first probe runs one interval after start; while the container is
in its start period probes run every ``start_interval`` and failures do not count; a success
makes it ``healthy`` (and resets the failure streak); ``retries`` consecutive counted failures
make it ``unhealthy``; a probe that outlives ``timeout`` is a failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from orchestrator.errors import StackError, TemporaryError
from orchestrator.reconciler.clock import Clock
from orchestrator.reconciler.ports import ExecResult

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_START_INTERVAL = 5.0

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


@dataclass(frozen=True)
class HealthCheck:
    """A container health check; ``test`` is the argv form starting with CMD or CMD-SHELL."""

    test: tuple[str, ...]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    start_period: float = 0.0
    start_interval: float = DEFAULT_START_INTERVAL

    def argv(self) -> list[str]:
        kind, *rest = self.test
        if kind == "CMD":
            return list(rest)
        return ["/bin/sh", "-c", " ".join(rest)]

    @classmethod
    def from_compose(cls, config: Mapping[str, Any] | None) -> HealthCheck | None:
        """The check for a ``healthcheck:`` mapping (durations in seconds), None when disabled."""
        if not config or config.get("disable") in (True, "true", "True"):
            return None
        test = config.get("test")
        if test is None:
            return None
        if isinstance(test, str):
            argv: tuple[str, ...] = ("CMD-SHELL", test)
        else:
            argv = tuple(str(t) for t in test)
        if not argv or argv[0] == "NONE":
            return None
        if argv[0] not in ("CMD", "CMD-SHELL") or len(argv) < 2:
            raise StackError(
                f"invalid healthcheck test {list(argv)!r}: expected [CMD, ...] or [CMD-SHELL, command]"
            )

        def seconds(key: str, default: float) -> float:
            value = config.get(key)
            return default if value is None or float(value) == 0 else float(value)

        retries = config.get("retries")
        return cls(
            test=argv,
            interval=seconds("interval", DEFAULT_INTERVAL),
            timeout=seconds("timeout", DEFAULT_TIMEOUT),
            retries=int(retries) if retries else DEFAULT_RETRIES,
            start_period=seconds("start_period", 0.0),
            start_interval=seconds("start_interval", DEFAULT_START_INTERVAL),
        )


Probe = Callable[[Sequence[str], float], Awaitable[ExecResult]]
Report = Callable[[str, ExecResult], None]


async def monitor_health(check: HealthCheck, probe: Probe, clock: Clock, report: Report) -> None:
    """Probe until cancelled, calling ``report(status, result)`` after every probe."""
    started = clock.now()
    status = STARTING
    failing_streak = 0
    while True:
        in_start_period = clock.now() < started + check.start_period
        wait = check.start_interval if in_start_period and status == STARTING else check.interval
        await clock.sleep(wait)
        result = await _run_probe(check, probe, clock)
        if result.exit_code == 0:
            failing_streak = 0
            status = HEALTHY
        elif clock.now() >= started + check.start_period:
            failing_streak += 1
            if failing_streak >= check.retries:
                status = UNHEALTHY
        report(status, result)


async def _run_probe(check: HealthCheck, probe: Probe, clock: Clock) -> ExecResult:
    result: ExecResult | None = None
    async with anyio.create_task_group() as group:

        async def run() -> None:
            nonlocal result
            try:
                result = await probe(check.argv(), check.timeout)
            except TemporaryError as exc:
                result = ExecResult(-1, f"health probe could not run: {exc}")
            group.cancel_scope.cancel()

        async def deadline() -> None:
            await clock.sleep(check.timeout)
            group.cancel_scope.cancel()

        group.start_soon(run)
        group.start_soon(deadline)
    if result is not None:
        return result
    return ExecResult(-1, f"Health check exceeded timeout ({check.timeout:g}s)", timed_out=True)
