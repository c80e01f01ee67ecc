"""``orc logs``: the containers' output from their log files, interleaved by time.

Reads the files directly (no supervisor needed): ``--tail`` per container, ``--since``/``--until``
as RFC 3339 times or durations (``10m``), ``-t`` timestamps, ``-f`` follows across rotation and
restarts until interrupted.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from orchestrator.cli.lifecycle import project_handle
from orchestrator.errors import UsageError


def parse_when(text: str | None, now: float) -> int | None:
    """An RFC 3339 time, a Unix timestamp or a duration back from now, in ns since the epoch."""
    if text is None:
        return None
    from orchestrator.model import parse_duration
    from orchestrator.state.logs import parse_time

    try:
        return parse_time(text if text[-1] == "Z" or "+" in text[10:] else text + "Z")
    except (ValueError, IndexError):
        pass
    try:
        return int(float(text) * 1e9)
    except ValueError:
        pass
    try:
        return int((now - parse_duration(text)) * 1e9)
    except Exception as exc:
        raise UsageError(
            f"invalid time {text!r}: use an RFC 3339 time, a Unix timestamp or a duration"
        ) from exc


def register(app: typer.Typer) -> None:
    @app.command("logs")
    def logs_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
        follow: Annotated[bool, typer.Option("--follow", "-f", help="Follow log output")] = False,
        timestamps: Annotated[bool, typer.Option("--timestamps", "-t", help="Show timestamps")] = False,
        tail: Annotated[
            str, typer.Option("--tail", "-n", help="Lines from the end of each container's logs")
        ] = "all",
        since: Annotated[str | None, typer.Option("--since", help="Since a time or a duration ago")] = None,
        until: Annotated[str | None, typer.Option("--until", help="Until a time or a duration ago")] = None,
        no_prefix: Annotated[bool, typer.Option("--no-log-prefix", help="Don't print the prefix")] = False,
    ) -> None:
        """View output from containers."""
        from orchestrator.state.logs import follow_logs, format_entry, read_logs

        if tail != "all" and not tail.isdigit():
            raise UsageError(f"invalid --tail {tail!r}: a number or all")
        handle, _ = project_handle(ctx, need_files=False)
        now = time.time()
        since_ns, until_ns = parse_when(since, now), parse_when(until, now)
        wanted = list(services or [])
        sources = handle.log_sources(wanted)
        width = max((len(name) for name, _ in sources), default=0)
        for entry in read_logs(
            sources, tail=None if tail == "all" else int(tail), since_ns=since_ns, until_ns=until_ns
        ):
            sys.stdout.write(
                format_entry(entry, prefix_width=width, timestamps=timestamps, prefix=not no_prefix)
            )
        sys.stdout.flush()
        if not follow:
            return
        try:
            for entry in follow_logs(
                lambda: handle.log_sources(wanted), keep_going=lambda: True, until_ns=until_ns
            ):
                sys.stdout.write(
                    format_entry(entry, prefix_width=width, timestamps=timestamps, prefix=not no_prefix)
                )
                sys.stdout.flush()
        except KeyboardInterrupt:
            return
