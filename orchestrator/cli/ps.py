"""The behaviour of ``orc ps`` (``verb_ps`` declares its options): the project's containers from
the recorded state (no supervisor needed).

``--format json`` prints one JSON object per line with Docker Compose's keys (ID, Name, Service,
State, Health, ExitCode, ...); the default is a table. Service arguments, ``--status`` (repeatable:
Docker's words created, running, paused, restarting, removing, exited, dead) and ``--filter
status=...`` narrow the list; a status filter includes stopped containers, as ``-a`` does (Docker
Compose v2.40.3 does the same, and shows nothing for a word it does not know). ``--orphans=false``
(or ``--no-orphans``) leaves out the containers of services the files no longer declare;
``cli.entry`` spells Compose's ``--orphans=false`` as ``--no-orphans`` for both parsers.
"""

from __future__ import annotations

import json
import time
from typing import Any

from orchestrator.cli.lifecycle import project_handle
from orchestrator.cli.options import CommandContext
from orchestrator.errors import UsageError


def _status(record: Any, now: float) -> str:
    if record.status == "running":
        since = int(now - (record.started_at or now))
        health = f" ({record.health})" if record.health else ""
        return f"Up {_ago(since)}{health}"
    if record.status == "exited":
        since = int(now - (record.finished_at or now))
        code = record.exit_code if record.exit_code is not None else -1
        return f"Exited ({code}) {_ago(since)} ago"
    return record.status.capitalize()


def _publisher(port: str) -> dict[str, Any]:
    """``127.0.0.1:8080->80/tcp`` as Compose's Publishers entry."""
    host, _, rest = port.partition("->")
    target, _, protocol = rest.partition("/")
    url, _, published = host.rpartition(":")
    return {
        "URL": url.strip("[]"),
        "TargetPort": int(target),
        "PublishedPort": int(published),
        "Protocol": protocol,
    }


def _ago(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' * (seconds != 1)}"
    if seconds < 3600:
        return f"{seconds // 60} minute{'s' * (seconds // 60 != 1)}"
    return f"{seconds // 3600} hour{'s' * (seconds // 3600 != 1)}"


def status_filter(statuses: list[str] | None, filters: list[str] | None) -> set[str]:
    """The container states ``--status`` and ``--filter status=...`` ask for (empty: any)."""
    wanted = set(statuses or [])
    for item in filters or []:
        key, sep, value = item.partition("=")
        if not sep or key != "status":
            raise UsageError(f"invalid --filter {item!r}: only status=STATUS is supported")
        wanted.add(value)
    return wanted


def run_ps(
    ctx: CommandContext,
    services: list[str] | None = None,
    *,
    all_: bool = False,
    format_: str = "table",
    quiet: bool = False,
    list_services: bool = False,
    status: list[str] | None = None,
    filter_: list[str] | None = None,
    no_trunc: bool = False,
    orphans: bool = True,
) -> None:
    """``orc ps`` once its command line is parsed (by typer, or by ``cli.fast``)."""
    if format_ not in ("table", "json"):
        raise UsageError(f"unsupported --format {format_!r}: table or json")
    wanted = status_filter(status, filter_)
    # Without orphans, the files say which services are declared: they must load then.
    handle, loaded = project_handle(ctx, need_files=not orphans)
    declared = set((getattr(loaded, "document", None) or {}).get("services") or {})
    now = time.time()
    records = [
        r
        for r in handle.containers(include_stopped=all_ or bool(wanted))
        if (not services or r.service in services)
        and (not wanted or r.status in wanted)
        and (orphans or r.service in declared)
    ]
    if list_services:
        for name in sorted({r.service for r in records}):
            print(name)
        return
    if quiet:
        for r in records:
            print(r.container_id)
        return
    if format_ == "json":
        for r in records:
            print(
                json.dumps(
                    {
                        "ID": r.container_id,
                        "Name": r.name,
                        "Names": r.name,
                        "Project": r.project,
                        "Service": r.service,
                        "State": r.status,
                        "Health": r.health or "",
                        "ExitCode": r.exit_code or 0,
                        "Image": r.image,
                        "Status": _status(r, now),
                        "Networks": ",".join(n.network for n in r.networks),
                        "Ports": ", ".join(r.ports),
                        "Publishers": [_publisher(p) for p in r.ports],
                    },
                    separators=(",", ":"),
                )
            )
        return
    rows = [("NAME", "IMAGE", "SERVICE", "STATUS", "PORTS")]
    rows += [(r.name, r.image, r.service, _status(r, now), ", ".join(r.ports)) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
