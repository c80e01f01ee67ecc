"""Restart policies and Docker's backoff on a virtual clock (plain floats: nothing here sleeps)."""

from __future__ import annotations

import pytest

from orchestrator.errors import StackError
from orchestrator.planner.restart import BACKOFF_MAX, RestartPolicy, RestartTracker


def crash_loop(
    tracker: RestartTracker, exits: int, run_for: float = 0.5, code: int = 1
) -> list[float | None]:
    """Run ``exits`` short-lived runs back to back; return each delay (None when not restarted)."""
    now = 1000.0
    delays: list[float | None] = []
    for _ in range(exits):
        started = now
        now += run_for
        decision = tracker.on_exit(code, started_at=started, exited_at=now)
        delays.append(decision.delay if decision.restart else None)
        if decision.restart:
            now += decision.delay
    return delays


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, RestartPolicy("no")),
        ("no", RestartPolicy("no")),
        ("always", RestartPolicy("always")),
        ("unless-stopped", RestartPolicy("unless-stopped")),
        ("on-failure", RestartPolicy("on-failure")),
        ("on-failure:3", RestartPolicy("on-failure", max_attempts=3)),
        ("on-failure:0", RestartPolicy("on-failure")),
    ],
)
def test_parse_restart(text: str | None, expected: RestartPolicy) -> None:
    assert RestartPolicy.from_compose(text) == expected


@pytest.mark.parametrize("text", ["sometimes", "always:3", "on-failure:x", "on-failure:-1"])
def test_parse_restart_rejects(text: str) -> None:
    with pytest.raises(StackError, match="invalid restart policy"):
        RestartPolicy.from_compose(text)


def test_deploy_restart_policy_replaces_restart() -> None:
    policy = RestartPolicy.from_compose(
        "always", {"condition": "on-failure", "max_attempts": 4, "delay": 2.5, "window": 30.0}
    )
    assert policy == RestartPolicy("on-failure", max_attempts=4, delay=2.5, window=30.0)
    assert RestartPolicy.from_compose("no", {}) == RestartPolicy("always")
    assert RestartPolicy.from_compose(None, {"condition": "none"}) == RestartPolicy("no")
    with pytest.raises(StackError, match="condition"):
        RestartPolicy.from_compose(None, {"condition": "sometimes"})


def test_docker_backoff_doubles_from_100ms_to_one_minute() -> None:
    delays = crash_loop(RestartTracker(RestartPolicy("always")), 12)
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, BACKOFF_MAX, BACKOFF_MAX]


def test_backoff_resets_after_ten_seconds_up() -> None:
    tracker = RestartTracker(RestartPolicy("always"))
    assert crash_loop(tracker, 4) == [0.1, 0.2, 0.4, 0.8]
    assert tracker.on_exit(1, started_at=0.0, exited_at=10.0).delay == 0.1
    assert tracker.on_exit(1, started_at=20.0, exited_at=29.9).delay == 0.2
    assert tracker.restart_count == 6


def test_no_never_restarts() -> None:
    decision = RestartTracker(RestartPolicy("no")).on_exit(1, started_at=0, exited_at=1)
    assert not decision.restart and "no" in decision.reason


def test_on_failure_ignores_success_and_counts_attempts() -> None:
    tracker = RestartTracker(RestartPolicy.from_compose("on-failure:2"))
    ok = tracker.on_exit(0, started_at=0, exited_at=1)
    assert not ok.restart and "code 0" in ok.reason
    first = tracker.on_exit(3, started_at=2, exited_at=3)
    assert (
        first.restart and first.reason == "exited with code 3, restart policy on-failure:2 (attempt 1 of 2)"
    )
    assert tracker.on_exit(3, started_at=4, exited_at=5).restart
    third = tracker.on_exit(3, started_at=6, exited_at=7)
    assert not third.restart and third.reason == "gave up after 2 restarts (on-failure:2)"


def test_unbounded_on_failure_keeps_going() -> None:
    assert None not in crash_loop(RestartTracker(RestartPolicy("on-failure")), 30)


def test_always_restarts_after_success_too() -> None:
    decision = RestartTracker(RestartPolicy("always")).on_exit(0, started_at=0, exited_at=1)
    assert decision.restart and decision.delay == 0.1


@pytest.mark.parametrize("mode", ["always", "unless-stopped", "on-failure"])
def test_stopped_by_user_is_never_restarted_until_reset(mode: str) -> None:
    tracker = RestartTracker(RestartPolicy(mode))
    assert not tracker.on_exit(137, started_at=0, exited_at=1, stopped_by_user=True).restart
    assert not tracker.on_exit(1, started_at=2, exited_at=3).restart  # still cancelled
    tracker.reset()
    assert tracker.on_exit(1, started_at=4, exited_at=5).restart


def test_supervisor_start_brings_back_per_policy() -> None:
    def back(mode: str, code: int | None, by_user: bool) -> bool:
        return RestartTracker(RestartPolicy(mode)).on_supervisor_start(code, by_user).restart

    assert back("always", 0, by_user=True)
    assert back("unless-stopped", 1, by_user=False)
    assert not back("unless-stopped", 1, by_user=True)
    assert back("on-failure", 2, by_user=False)
    assert not back("on-failure", 0, by_user=False)
    assert not back("no", 1, by_user=False)


def test_fixed_delay_replaces_backoff() -> None:
    tracker = RestartTracker(RestartPolicy("always", delay=5.0))
    assert crash_loop(tracker, 4) == [5.0, 5.0, 5.0, 5.0]


def test_window_counts_only_recent_restarts() -> None:
    tracker = RestartTracker(RestartPolicy("on-failure", max_attempts=2, delay=1.0, window=10.0))
    # Two quick failures use up the attempts inside the window...
    assert tracker.on_exit(1, started_at=0, exited_at=1).restart
    assert tracker.on_exit(1, started_at=2, exited_at=3).restart
    refused = tracker.on_exit(1, started_at=4, exited_at=5)
    assert not refused.restart and "within 10s" in refused.reason
    # ...but once they have left the window, it may restart again.
    assert tracker.on_exit(1, started_at=20, exited_at=30).restart
