"""PURE. Restart policies and Docker's restart backoff, as arithmetic on times the caller passes in.

Owned here: :class:`RestartPolicy` (parsed from a service's ``restart:`` string and its
``deploy.restart_policy``) and :class:`RestartTracker`, one per container, which answers
"this container just exited: restart it, after how long, and why?" as a :class:`RestartDecision`.
The reconciler calls :meth:`RestartTracker.on_exit` when the process driver reports an exit and
sleeps on its own (injected) clock for ``delay`` seconds; nothing here reads a clock.

Semantics (Docker Engine's restart manager, and Compose's mapping of ``deploy.restart_policy``):

* ``no``: never. ``always``: after any exit. ``unless-stopped``: like ``always`` but not after
  the user stopped it. ``on-failure[:N]``: after a non-zero exit, at most N times (0 or absent:
  unbounded).
* A container the user stopped is never restarted by its policy (``orc stop`` cancels it); when
  the supervisor itself starts again, ``always`` containers come back even if stopped by the user,
  ``unless-stopped`` ones only if they were not, ``on-failure`` ones if they last failed.
* Backoff: the first restart waits 100 ms, each further one doubles the wait up to 1 minute; a
  container that ran 10 s or more before exiting resets the wait to 100 ms.
* ``deploy.restart_policy``, when present, replaces ``restart`` (Compose does the same):
  ``condition`` none|on-failure|any (default any), ``max_attempts``, ``delay`` (a fixed wait
  instead of the backoff) and ``window`` (only restarts within the last ``window`` seconds count
  against ``max_attempts``, as swarm does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import StackError

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0

MODES = ("no", "always", "on-failure", "unless-stopped")
# deploy.restart_policy.condition → engine mode, as Compose maps it (it also accepts the engine names).
_CONDITIONS = {
    "none": "no",
    "no": "no",
    "on-failure": "on-failure",
    "any": "always",
    "always": "always",
    "unless-stopped": "unless-stopped",
}


@dataclass(frozen=True)
class RestartPolicy:
    """A container's restart policy. ``max_attempts`` None means unbounded; ``delay`` None means
    Docker's doubling backoff; ``window`` None means every restart counts."""

    mode: str = "no"
    max_attempts: int | None = None
    delay: float | None = None
    window: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise StackError(f"invalid restart policy {self.mode!r}: expected one of {', '.join(MODES)}")

    @classmethod
    def from_compose(
        cls, restart: str | None = None, deploy_restart_policy: Mapping[str, Any] | None = None
    ) -> RestartPolicy:
        """The policy for a service's ``restart`` value and ``deploy.restart_policy`` mapping
        (durations already in seconds)."""
        if deploy_restart_policy is not None:
            condition = deploy_restart_policy.get("condition") or "any"
            mode = _CONDITIONS.get(condition)
            if mode is None:
                raise StackError(
                    f"invalid deploy.restart_policy.condition {condition!r}: expected none, on-failure or any"
                )
            attempts = deploy_restart_policy.get("max_attempts")
            delay = deploy_restart_policy.get("delay")
            window = deploy_restart_policy.get("window")
            return cls(
                mode=mode,
                max_attempts=int(attempts) if attempts else None,
                delay=float(delay) if delay is not None else None,
                window=float(window) if window else None,
            )
        if not restart:
            return cls()
        name, _, count = restart.partition(":")
        if name not in MODES:
            raise StackError(f"invalid restart policy {restart!r}: expected one of {', '.join(MODES)}")
        if count:
            if name != "on-failure":
                raise StackError(f"invalid restart policy {restart!r}: only on-failure takes a retry count")
            if not count.isdigit():
                raise StackError(f"invalid restart policy {restart!r}: the retry count must be a number")
        return cls(mode=name, max_attempts=int(count) if count and int(count) > 0 else None)

    def __str__(self) -> str:
        if self.mode == "on-failure" and self.max_attempts:
            return f"on-failure:{self.max_attempts}"
        return self.mode


@dataclass(frozen=True)
class RestartDecision:
    """What to do after an exit: ``restart`` after ``delay`` seconds, and the reason in words."""

    restart: bool
    delay: float
    reason: str


@dataclass
class RestartTracker:
    """The restart bookkeeping of one container across its exits (Docker's restart manager)."""

    policy: RestartPolicy
    restart_count: int = 0
    backoff: float = 0.0
    restart_times: list[float] = field(default_factory=list)
    cancelled: bool = False

    def on_exit(
        self, exit_code: int, *, started_at: float, exited_at: float, stopped_by_user: bool = False
    ) -> RestartDecision:
        """Decide what follows an exit at ``exited_at`` of a run that began at ``started_at``."""
        policy = self.policy
        if policy.mode == "no":
            return RestartDecision(False, 0.0, "restart policy is no")
        if stopped_by_user or self.cancelled:
            self.cancelled = True
            return RestartDecision(False, 0.0, "stopped by the user")
        ran_for = max(0.0, exited_at - started_at)
        self._advance_backoff(ran_for)

        if policy.mode == "on-failure" and exit_code == 0:
            return RestartDecision(False, 0.0, "exited with code 0 and the policy is on-failure")
        counted = self._counted_restarts(exited_at)
        if policy.max_attempts is not None and counted >= policy.max_attempts:
            within = f" within {_seconds(policy.window)}" if policy.window else ""
            return RestartDecision(
                False, 0.0, f"gave up after {counted} restart{'s' * (counted != 1)}{within} ({policy})"
            )

        delay = policy.delay if policy.delay is not None else self.backoff
        self.restart_count += 1
        self.restart_times.append(exited_at + delay)
        attempt = (
            f" (attempt {counted + 1} of {policy.max_attempts})" if policy.max_attempts is not None else ""
        )
        return RestartDecision(True, delay, f"exited with code {exit_code}, restart policy {policy}{attempt}")

    def on_supervisor_start(self, last_exit_code: int | None, stopped_by_user: bool) -> RestartDecision:
        """Should a container that is not running come back when its supervisor (re)starts?"""
        mode = self.policy.mode
        if mode == "always":
            return RestartDecision(True, 0.0, "restart policy always")
        if mode == "unless-stopped" and not stopped_by_user:
            return RestartDecision(True, 0.0, "restart policy unless-stopped")
        if mode == "on-failure" and not stopped_by_user and last_exit_code not in (None, 0):
            return RestartDecision(
                True, 0.0, f"last exit code {last_exit_code}, restart policy {self.policy}"
            )
        return RestartDecision(False, 0.0, f"restart policy {self.policy}")

    def reset(self) -> None:
        """The user started the container again: counts, backoff and cancellation start over."""
        self.restart_count = 0
        self.backoff = 0.0
        self.restart_times.clear()
        self.cancelled = False

    def _advance_backoff(self, ran_for: float) -> None:
        if ran_for >= BACKOFF_RESET_AFTER:
            self.backoff = 0.0
        self.backoff = BACKOFF_START if self.backoff == 0.0 else min(self.backoff * 2, BACKOFF_MAX)

    def _counted_restarts(self, now: float) -> int:
        if self.policy.window is None:
            return self.restart_count
        since = now - self.policy.window
        return sum(1 for t in self.restart_times if t >= since)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}s"
