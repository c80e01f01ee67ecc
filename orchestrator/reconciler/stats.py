"""Resource usage of running containers, as ``docker compose stats --no-stream`` shows it.

Owned here: :class:`ContainerUsage` (one raw reading: cumulative CPU time, memory, pids,
network and block I/O counters), :func:`usage_row` (two readings → Docker's row: ``CPUPerc``
from the CPU time used between them over the wall time, memory without the inactive file
cache, decimal units for I/O and binary units for memory), and :func:`container_stats`, which
the supervisor's ``stats`` request calls: it reads every running container of the services
twice, ``interval`` apart, through the runtime adapter's ``usage``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from orchestrator.errors import OrcError
from orchestrator.state.records import ContainerRecord


@dataclass(frozen=True)
class ContainerUsage:
    cpu_ns: int | None = None
    memory_usage: int | None = None
    memory_inactive_file: int | None = None
    memory_limit: int | None = None
    pids: int | None = None
    net_rx: int = 0
    net_tx: int = 0
    block_read: int = 0
    block_write: int = 0


def human_size(size: float) -> str:
    """Decimal units with four significant digits, as Docker prints I/O (``1.23kB``)."""
    return _scaled(size, 1000.0, ("B", "kB", "MB", "GB", "TB", "PB"))


def bytes_size(size: float) -> str:
    """Binary units with four significant digits, as Docker prints memory (``1.5MiB``)."""
    return _scaled(size, 1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB"))


def _scaled(size: float, base: float, units: tuple[str, ...]) -> str:
    index = 0
    while size >= base and index < len(units) - 1:
        size /= base
        index += 1
    return f"{size:.4g}{units[index]}"


def usage_row(
    record: ContainerRecord,
    before: ContainerUsage,
    after: ContainerUsage,
    elapsed_seconds: float,
    host_memory: int,
) -> dict[str, str]:
    cpu = 0.0
    if before.cpu_ns is not None and after.cpu_ns is not None and elapsed_seconds > 0:
        cpu = max(0, after.cpu_ns - before.cpu_ns) / (elapsed_seconds * 1e9) * 100.0
    memory = max(0, (after.memory_usage or 0) - (after.memory_inactive_file or 0))
    limit = after.memory_limit if after.memory_limit and after.memory_limit < host_memory else host_memory
    return {
        "BlockIO": f"{human_size(after.block_read)} / {human_size(after.block_write)}",
        "CPUPerc": f"{cpu:.2f}%",
        "Container": record.container_id,
        "ID": record.container_id[:12],
        "MemPerc": f"{(memory / limit * 100.0) if limit else 0.0:.2f}%",
        "MemUsage": f"{bytes_size(memory)} / {bytes_size(limit)}",
        "Name": record.name,
        "NetIO": f"{human_size(after.net_rx)} / {human_size(after.net_tx)}",
        "PIDs": str(after.pids or 0),
    }


def host_memory_bytes(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


async def container_stats(
    read_usage: Callable[[ContainerRecord], Awaitable[ContainerUsage]],
    records: Sequence[ContainerRecord],
    host_memory: int,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
) -> list[dict[str, str]]:
    """One row per record (running ones; those that stop meanwhile are left out)."""
    before: dict[str, ContainerUsage] = {}
    started = clock()
    for record in records:
        before[record.name] = await read_usage(record)
    await sleep(interval)
    elapsed = clock() - started
    rows = []
    for record in records:
        try:
            after = await read_usage(record)
        except (OrcError, OSError):  # stopped between the two readings
            continue
        rows.append(usage_row(record, before[record.name], after, elapsed, host_memory))
    return rows


async def stats_request(reconciler: Any, project: str, request: dict[str, Any]) -> dict[str, Any]:
    """The supervisor's ``stats`` request: ``services`` (all when empty), ``interval`` seconds."""
    await reconciler.observe(None, project)
    records = [
        r
        for r in reconciler.containers_of(project, tuple(request.get("services") or ()))
        if r.status in ("running", "paused")
    ]
    try:
        with open("/proc/meminfo") as meminfo:
            host_memory = host_memory_bytes(meminfo.read())
    except OSError:
        host_memory = 0
    interval = float(request.get("interval") or 0.5)
    return {"containers": await container_stats(reconciler.runtime.usage, records, host_memory, interval)}
