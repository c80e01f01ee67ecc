"""The ``pull_policy`` decision: pull, use what is local, build, or fail — a pure function.

Owned here: :func:`parse_pull_policy` and :func:`decide_pull`. The reconciler (``up``) and ``orc
pull`` call :func:`decide_pull` with what the store knows (is the image present, when was it last
pulled) and the current time; nothing here reads a clock or the store itself.

Policies, as the Compose specification lists them: ``always``, ``missing`` (aliases
``if_not_present`` and a bare ``refresh``, the default), ``never``, ``build``, ``daily``, ``weekly``
and ``every_<duration>`` where the duration is digits with a unit (``w d h m s``), repeated, e.g.
``every_1d12h``. :func:`policy_from_mode` takes the model's already-parsed form (mode ``refresh``
with an interval).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from orchestrator.errors import NotFoundError, PermanentError

_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_EVERY_RE = re.compile(r"^every_((?:[0-9]+[wdhms])+)$")
_PART_RE = re.compile(r"([0-9]+)([wdhms])")


class PullPolicyError(PermanentError):
    """A ``pull_policy`` value that is not one of the Compose policies."""


class Action(Enum):
    PULL = "pull"
    USE_LOCAL = "use-local"
    BUILD = "build"


@dataclass(frozen=True)
class PullPolicy:
    """A parsed policy: ``kind`` is always/missing/never/build/interval; ``interval`` in seconds."""

    kind: str
    interval: float | None = None


@dataclass(frozen=True)
class PullDecision:
    action: Action
    reason: str


def parse_pull_policy(text: str | None) -> PullPolicy:
    """Parse a ``pull_policy`` value (None → ``missing``)."""
    value = (text or "missing").strip().lower()
    if value == "always":
        return PullPolicy("always")
    if value in ("missing", "if_not_present", "refresh"):
        # compose-go's GetPullPolicy treats a bare ``refresh`` (no interval) like ``missing``
        return PullPolicy("missing")
    if value in ("never", "build"):
        return PullPolicy(value)
    if value == "daily":
        return PullPolicy("interval", 86400.0)
    if value == "weekly":
        return PullPolicy("interval", 7 * 86400.0)
    m = _EVERY_RE.match(value)
    if m:
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _PART_RE.findall(m.group(1)))
        if seconds <= 0:
            raise PullPolicyError(f"invalid pull_policy {text!r}: the interval must be positive")
        return PullPolicy("interval", float(seconds))
    raise PullPolicyError(
        f"invalid pull_policy {text!r}: want always, missing, never, build, daily, weekly or every_<duration>"
    )


def policy_from_mode(mode: str, interval: float | None = None) -> PullPolicy:
    """From ``model.service.PullPolicy`` (``mode`` always/never/missing/build/refresh + interval)."""
    if mode == "refresh":
        return PullPolicy("interval", interval) if interval else PullPolicy("missing")
    return parse_pull_policy(mode)


def decide_pull(
    policy: PullPolicy | str | None,
    *,
    present: bool,
    last_pulled: float | None,
    now: float,
    has_build: bool = False,
    image: str = "image",
) -> PullDecision:
    """What to do for one image. ``last_pulled`` is when this name was last pulled (None: never).

    ``missing`` with a ``build:`` section and no local image builds instead of pulling, as Compose
    does; ``never`` with no local image is an error naming the image.
    """
    if not isinstance(policy, PullPolicy):
        policy = parse_pull_policy(policy)
    if policy.kind == "build":
        return PullDecision(Action.BUILD, "pull_policy is build")
    if policy.kind == "always":
        return PullDecision(Action.PULL, "pull_policy is always")
    if policy.kind == "never":
        if not present:
            raise NotFoundError(f"{image} is not present locally and pull_policy is never")
        return PullDecision(Action.USE_LOCAL, "pull_policy is never")
    if not present:
        if has_build and policy.kind == "missing":
            return PullDecision(Action.BUILD, f"{image} is missing and the service has a build section")
        return PullDecision(Action.PULL, f"{image} is not present locally")
    if policy.kind == "interval":
        assert policy.interval is not None
        if last_pulled is None:
            return PullDecision(Action.PULL, f"{image} was never pulled (pull interval {policy.interval:g}s)")
        age = now - last_pulled
        if age >= policy.interval:
            return PullDecision(Action.PULL, f"last pull {age:.0f}s ago, interval {policy.interval:g}s")
        return PullDecision(Action.USE_LOCAL, f"pulled {age:.0f}s ago, within interval {policy.interval:g}s")
    return PullDecision(Action.USE_LOCAL, f"{image} is present locally")
