"""Resource limits as the cgroup driver understands them, and the pure v1→v2 conversions.

The reconciler translates a Compose service (``mem_limit``, ``cpus``, ``pids_limit`` ...) into a
``CgroupLimits``; the v1 and v2 backends in ``driver.py`` turn it into file writes. Nothing here
touches the filesystem, so every rule (Docker's swap semantics, runc's share→weight curve, range
checks) is unit-tested directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from orchestrator.errors import PermanentError

UNLIMITED = -1
"""Explicitly unlimited (Docker's ``-1``), as opposed to ``None`` = leave the kernel default."""

DEFAULT_CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000
MIN_CPU_PERIOD_US = 1_000
MAX_CPU_PERIOD_US = 1_000_000
MIN_CPU_SHARES = 2
MAX_CPU_SHARES = 262_144
MIN_BLKIO_WEIGHT = 10
MAX_BLKIO_WEIGHT = 1_000


@dataclass(frozen=True)
class DeviceRule:
    """One line of a v1 ``devices.allow``/``devices.deny`` file: ``c 1:3 rwm``.

    ``major``/``minor`` of ``None`` mean the wildcard ``*``; ``kind`` is ``c``, ``b`` or ``a``.
    """

    kind: str
    major: int | None
    minor: int | None
    access: str = "rwm"

    def __post_init__(self) -> None:
        if self.kind not in ("a", "b", "c"):
            raise PermanentError(f"device rule type must be a, b or c, not {self.kind!r}")
        if not self.access or set(self.access) - set("rwm"):
            raise PermanentError(f"device rule access must be made of r, w, m, not {self.access!r}")

    def line(self) -> str:
        if self.kind == "a":
            return "a"
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.kind} {major}:{minor} {self.access}"


# Docker's default allow list on top of "deny everything": mknod of any node (the node still
# cannot be opened unless allowed below), the standard character devices, the pty master and
# slaves, and tun. The process runtime creates the matching nodes in /dev.
DOCKER_DEFAULT_DEVICES: tuple[DeviceRule, ...] = (
    DeviceRule("c", None, None, "m"),
    DeviceRule("b", None, None, "m"),
    DeviceRule("c", 1, 3),  # /dev/null
    DeviceRule("c", 1, 5),  # /dev/zero
    DeviceRule("c", 1, 7),  # /dev/full
    DeviceRule("c", 1, 8),  # /dev/random
    DeviceRule("c", 1, 9),  # /dev/urandom
    DeviceRule("c", 5, 0),  # /dev/tty
    DeviceRule("c", 5, 1),  # /dev/console
    DeviceRule("c", 5, 2),  # /dev/ptmx
    DeviceRule("c", 136, None),  # /dev/pts/*
    DeviceRule("c", 10, 200),  # /dev/net/tun
)


@dataclass(frozen=True)
class CgroupLimits:
    """What one container may use. ``None`` everywhere means "do not write this knob".

    Byte sizes are bytes. ``memory_swap`` follows Docker: it is the *total* of memory and swap,
    ``-1`` is unlimited swap, and ``None`` with ``memory`` set gives twice ``memory`` (Docker's
    default); set it equal to ``memory`` to forbid swap. ``cpus`` is a fraction of one CPU per
    period (0.5 = half a core); explicit ``cpu_quota_us`` wins over it. ``pids_limit`` of ``-1``
    or ``0`` is unlimited, as in Docker.

    ``devices`` of ``None`` applies Docker's default policy (deny all, allow
    ``DOCKER_DEFAULT_DEVICES``); ``extra_devices`` are allowed on top (Compose ``devices:`` and
    ``device_cgroup_rules``). ``unconfined_devices`` skips the policy (``privileged``).
    """

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    memory_swappiness: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpu_quota_us: int | None = None
    cpu_period_us: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    blkio_weight: int | None = None
    oom_kill_group: bool = False
    devices: tuple[DeviceRule, ...] | None = None
    extra_devices: tuple[DeviceRule, ...] = field(default=())
    unconfined_devices: bool = False

    def validate(self) -> None:
        """Raise PermanentError naming the first knob whose value no kernel would accept."""
        if self.memory is not None and self.memory != UNLIMITED and self.memory <= 0:
            raise PermanentError(f"memory limit must be positive or -1, not {self.memory}")
        if self.memory_swap is not None and self.memory_swap not in (0, UNLIMITED):
            if self.memory is None or self.memory == UNLIMITED:
                raise PermanentError("memory_swap needs a memory limit (it is memory plus swap)")
            if self.memory_swap < self.memory:
                raise PermanentError(
                    f"memory_swap ({self.memory_swap}) must be at least memory ({self.memory}): "
                    "it is the total of memory and swap"
                )
        if self.memory_reservation is not None and self.memory_reservation < 0:
            raise PermanentError(f"memory reservation must be >= 0, not {self.memory_reservation}")
        if self.memory_swappiness is not None and not 0 <= self.memory_swappiness <= 100:
            raise PermanentError(f"memory swappiness must be 0..100, not {self.memory_swappiness}")
        if self.cpus is not None and (self.cpus <= 0 or math.isnan(self.cpus)):
            raise PermanentError(f"cpus must be positive, not {self.cpus}")
        if self.cpu_shares is not None and not MIN_CPU_SHARES <= self.cpu_shares <= MAX_CPU_SHARES:
            raise PermanentError(
                f"cpu_shares must be {MIN_CPU_SHARES}..{MAX_CPU_SHARES}, not {self.cpu_shares}"
            )
        if (
            self.cpu_period_us is not None
            and not MIN_CPU_PERIOD_US <= self.cpu_period_us <= MAX_CPU_PERIOD_US
        ):
            raise PermanentError(
                f"cpu_period must be {MIN_CPU_PERIOD_US}..{MAX_CPU_PERIOD_US} µs, not {self.cpu_period_us}"
            )
        if (
            self.cpu_quota_us is not None
            and self.cpu_quota_us != UNLIMITED
            and self.cpu_quota_us < MIN_CPU_QUOTA_US
        ):
            raise PermanentError(
                f"cpu_quota must be at least {MIN_CPU_QUOTA_US} µs or -1, not {self.cpu_quota_us}"
            )
        if self.pids_limit is not None and self.pids_limit < UNLIMITED:
            raise PermanentError(f"pids_limit must be >= -1, not {self.pids_limit}")
        if self.blkio_weight is not None and not MIN_BLKIO_WEIGHT <= self.blkio_weight <= MAX_BLKIO_WEIGHT:
            raise PermanentError(
                f"blkio_weight must be {MIN_BLKIO_WEIGHT}..{MAX_BLKIO_WEIGHT}, not {self.blkio_weight}"
            )

    def effective_memory_swap(self) -> int | None:
        """The memory+swap total to write, after Docker's defaulting (None: leave as is)."""
        if self.memory_swap == 0:
            return None
        if self.memory_swap is not None:
            return self.memory_swap
        if self.memory is not None and self.memory > 0:
            return 2 * self.memory
        return None

    def cpu_quota_and_period(self) -> tuple[int | None, int | None]:
        """(quota µs or -1 or None, period µs or None) from ``cpus`` or the explicit pair."""
        period = self.cpu_period_us
        quota = self.cpu_quota_us
        if quota is None and self.cpus is not None:
            period = period or DEFAULT_CPU_PERIOD_US
            quota = max(MIN_CPU_QUOTA_US, round(self.cpus * period))
        return quota, period

    def device_rules(self) -> tuple[DeviceRule, ...] | None:
        """The allow list to install after ``deny a``, or None for no policy (privileged)."""
        if self.unconfined_devices:
            return None
        base = DOCKER_DEFAULT_DEVICES if self.devices is None else self.devices
        return (*base, *self.extra_devices)


def pids_max_value(limit: int) -> str:
    """``pids.max`` text: Docker treats 0 and -1 as unlimited."""
    return "max" if limit <= 0 else str(limit)


def cpu_shares_to_weight(shares: int) -> int:
    """v1 ``cpu.shares`` (2..262144, default 1024) → v2 ``cpu.weight`` (1..10000, default 100).

    The curve current runc uses: a quadratic in log2(shares) through (2, 1), (1024, 100) and
    (262144, 10000), so the default maps to the default (older runc used a straight line that
    sent 1024 to 39).
    """
    if shares <= MIN_CPU_SHARES:
        return 1
    if shares >= MAX_CPU_SHARES:
        return 10_000
    log2 = math.log2(shares)
    exponent = (log2 * log2 + 125 * log2) / 612.0 - 7.0 / 34.0
    return math.ceil(10**exponent)


def blkio_weight_to_io_weight(weight: int) -> int:
    """v1 ``blkio.weight`` (10..1000) → v2 ``io.weight`` (1..10000), linearly as runc does."""
    return 1 + (weight - MIN_BLKIO_WEIGHT) * 9999 // (MAX_BLKIO_WEIGHT - MIN_BLKIO_WEIGHT)


def swap_max_value(memory: int | None, memory_swap_total: int | None) -> str | None:
    """v2 ``memory.swap.max`` from Docker's memory+swap total (v2 limits swap on its own)."""
    if memory_swap_total is None:
        return "max" if memory == UNLIMITED else None
    if memory_swap_total == UNLIMITED:
        return "max"
    if memory is None or memory <= 0:
        raise PermanentError("memory_swap needs a memory limit (it is memory plus swap)")
    return str(memory_swap_total - memory)


def limit_value(value: int) -> str:
    """A byte limit for v2 files: ``-1`` is ``max``."""
    return "max" if value == UNLIMITED else str(value)
