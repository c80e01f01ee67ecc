"""``orc stats [--no-stream] [--format table|json] [SERVICE...]``: containers' resource usage.

The supervisor reads each running container's cgroup (CPU time, memory, pids, block I/O) and
network counters twice, half a second apart (``reconciler.stats``); this verb prints the rows as
``docker compose stats`` does: a table, or one JSON object per line with Docker's keys
(``BlockIO``, ``CPUPerc``, ``Container``, ``ID``, ``MemPerc``, ``MemUsage``, ``Name``,
``NetIO``, ``PIDs``). Without ``--no-stream`` it reprints until interrupted.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from orchestrator.cli.lifecycle import project_handle
from orchestrator.errors import UsageError

_COLUMNS = (
    ("CONTAINER ID", "ID"),
    ("NAME", "Name"),
    ("CPU %", "CPUPerc"),
    ("MEM USAGE / LIMIT", "MemUsage"),
    ("MEM %", "MemPerc"),
    ("NET I/O", "NetIO"),
    ("BLOCK I/O", "BlockIO"),
    ("PIDS", "PIDs"),
)


def render(rows: list[dict[str, Any]], format_: str) -> str:
    if format_ == "json":
        return "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
    table = [[title for title, _ in _COLUMNS]] + [[str(row[key]) for _, key in _COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS))]
    return "".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() + "\n"
        for line in table
    )


def register(app: typer.Typer) -> None:
    @app.command("stats")
    def stats_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
        no_stream: Annotated[
            bool, typer.Option("--no-stream", help="Disable streaming stats and only pull the first result")
        ] = False,
        format_: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    ) -> None:
        """Display a live stream of container(s) resource usage statistics."""
        if format_ not in ("table", "json"):
            raise UsageError(f"unsupported --format {format_!r}: table or json")
        handle, _ = project_handle(ctx, need_files=False)
        while True:
            rows = handle.request("stats", services=list(services or []))["containers"]
            typer.echo(render(rows, format_), nl=False)
            if no_stream:
                return
            if format_ == "table":
                typer.echo("")
