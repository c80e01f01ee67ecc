"""Health check config and Docker's probe rules, on virtual time."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from orchestrator.errors import StackError
from orchestrator.reconciler.clock import VirtualClock
from orchestrator.reconciler.health import HealthCheck, monitor_health
from orchestrator.reconciler.ports import ExecResult


def test_from_compose_forms() -> None:
    assert HealthCheck.from_compose({"test": "curl -f localhost"}) == HealthCheck(
        ("CMD-SHELL", "curl -f localhost")
    )
    check = HealthCheck.from_compose(
        {
            "test": ["CMD", "pg_isready", "-U", "x"],
            "interval": 2,
            "timeout": 1,
            "retries": 5,
            "start_period": 3,
        }
    )
    assert check is not None and check.argv() == ["pg_isready", "-U", "x"]
    assert (check.interval, check.timeout, check.retries, check.start_period, check.start_interval) == (
        2,
        1,
        5,
        3,
        5,
    )
    assert HealthCheck(("CMD-SHELL", "exit 0")).argv() == ["/bin/sh", "-c", "exit 0"]
    assert HealthCheck.from_compose({"test": ["NONE"]}) is None
    assert HealthCheck.from_compose({"test": "x", "disable": True}) is None
    assert HealthCheck.from_compose(None) is None
    with pytest.raises(StackError, match="invalid healthcheck test"):
        HealthCheck.from_compose({"test": ["RUN", "x"]})


def probe_run(
    check: HealthCheck, codes: list[int], probe_seconds: float = 0.0, until: float = 60.0
) -> list[tuple[float, str]]:
    """(virtual time, status) after each probe; probes answer ``codes`` in turn, then 0."""
    clock = VirtualClock(0.0)
    seen: list[tuple[float, str]] = []
    answers = iter(codes)

    async def probe(argv: Sequence[str], timeout: float) -> ExecResult:
        await clock.sleep(probe_seconds)
        return ExecResult(next(answers, 0))

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.autojump)
            with anyio.move_on_after(2):
                async with anyio.create_task_group() as inner:
                    inner.start_soon(
                        monitor_health, check, probe, clock, lambda s, r: seen.append((clock.now(), s))
                    )
                    await clock.sleep(until)
                    inner.cancel_scope.cancel()
            group.cancel_scope.cancel()

    anyio.run(main)
    return seen


def test_retries_consecutive_failures_make_it_unhealthy_and_success_heals() -> None:
    seen = probe_run(HealthCheck(("CMD", "x"), interval=1, retries=3), [1, 1, 1, 1], until=5.5)
    assert seen == [(1, "starting"), (2, "starting"), (3, "unhealthy"), (4, "unhealthy"), (5, "healthy")]


def test_a_success_resets_the_streak() -> None:
    seen = probe_run(HealthCheck(("CMD", "x"), interval=1, retries=2), [1, 0, 1, 0], until=4.5)
    assert [s for _, s in seen] == ["starting", "healthy", "healthy", "healthy"]


def test_slow_probe_times_out_as_a_failure() -> None:
    seen = probe_run(
        HealthCheck(("CMD", "x"), interval=1, timeout=2, retries=1), [], probe_seconds=5, until=3.5
    )
    assert seen == [(3, "unhealthy")]


def test_start_interval_applies_only_during_the_start_period() -> None:
    check = HealthCheck(("CMD", "x"), interval=10, retries=1, start_period=3, start_interval=1)
    seen = probe_run(check, [1, 1, 1, 1], until=14)
    # probes at 1, 2 (not counted: start period), 3 (counted: unhealthy), then every 10 s
    assert seen == [(1, "starting"), (2, "starting"), (3, "unhealthy"), (13, "unhealthy")]
