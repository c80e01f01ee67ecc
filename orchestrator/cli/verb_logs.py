"""``orc logs``: the containers' output from their log files, interleaved by time.

Reads the files directly (no supervisor needed): ``--tail`` per container, ``--since``/``--until``
as RFC 3339 times or durations (``10m``), ``-t`` timestamps, ``-f`` follows across rotation and
restarts until interrupted. On a terminal each container's ``name |`` prefix gets its own colour
(Docker Compose's cycle: cyan, yellow, green, magenta, blue, then their bold forms), unless
``--no-color`` or ``NO_COLOR`` is set; ``up``'s attached output uses the same :class:`LinePrinter`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli.lifecycle import project_handle
from orchestrator.errors import UsageError

if TYPE_CHECKING:
    from orchestrator.state.logs import LogEntry

_PREFIX_COLOURS = ("36", "33", "32", "35", "34", "36;1", "33;1", "32;1", "35;1", "34;1")


def use_colour(no_color: bool) -> bool:
    """Colour prefixes only on a terminal (or with ``--ansi always``), unless told not to
    (``--no-color``, ``NO_COLOR``, ``--ansi never``)."""
    from orchestrator.cli.lifecycle import ansi_allowed

    return not no_color and not os.environ.get("NO_COLOR") and ansi_allowed(sys.stdout)


class LinePrinter:
    """Formats log entries as ``docker compose logs`` prints them, colouring each container's
    prefix with the next colour of the cycle the first time the container appears."""

    def __init__(
        self, prefix_width: int, *, colour: bool, timestamps: bool = False, prefix: bool = True
    ) -> None:
        self.prefix_width = prefix_width
        self.colour = colour
        self.timestamps = timestamps
        self.prefix = prefix
        self._colours: dict[str, str] = {}

    def format(self, entry: LogEntry) -> str:
        from orchestrator.state.logs import format_entry

        if not (self.colour and self.prefix):
            return format_entry(
                entry, prefix_width=self.prefix_width, timestamps=self.timestamps, prefix=self.prefix
            )
        code = self._colours.setdefault(
            entry.container, _PREFIX_COLOURS[len(self._colours) % len(_PREFIX_COLOURS)]
        )
        text = format_entry(entry, timestamps=self.timestamps, prefix=False)
        return f"\033[{code}m{entry.container.ljust(self.prefix_width)} | \033[0m{text}"


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
        no_color: Annotated[bool, typer.Option("--no-color", help="Produce monochrome output")] = False,
        index: Annotated[
            int | None,
            typer.Option("--index", help="index of the container if service has multiple replicas"),
        ] = None,
    ) -> None:
        """View output from containers."""
        from orchestrator.state.logs import follow_logs, read_logs

        if tail != "all" and not tail.isdigit():
            raise UsageError(f"invalid --tail {tail!r}: a number or all")
        handle, _ = project_handle(ctx, need_files=False)
        now = time.time()
        since_ns, until_ns = parse_when(since, now), parse_when(until, now)
        wanted = list(services or [])
        if index is not None and index < 1:
            raise UsageError(f"invalid --index {index}: replicas are numbered from 1")
        sources = handle.log_sources(wanted, index)
        width = max((len(name) for name, _ in sources), default=0)
        printer = LinePrinter(width, colour=use_colour(no_color), timestamps=timestamps, prefix=not no_prefix)
        for entry in read_logs(
            sources, tail=None if tail == "all" else int(tail), since_ns=since_ns, until_ns=until_ns
        ):
            sys.stdout.write(printer.format(entry))
        sys.stdout.flush()
        if not follow:
            return
        try:
            for entry in follow_logs(
                lambda: handle.log_sources(wanted, index), keep_going=lambda: True, until_ns=until_ns
            ):
                sys.stdout.write(printer.format(entry))
                sys.stdout.flush()
        except KeyboardInterrupt:
            return
