"""``orc events``: the supervisor's events as they happen (``--json`` for JSON lines).

Each event is printed the way ``docker compose events`` prints it; ``--json`` gives one object per
line (time, type, action, id, service, attributes). Runs until interrupted.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated, Any

import typer

from orchestrator.cli.lifecycle import project_handle


def format_event(event: dict[str, Any]) -> str:
    attributes = ", ".join(f"{k}={v}" for k, v in sorted((event.get("attributes") or {}).items()))
    stamp = event.get("time", "")
    try:
        stamp = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S.%f")
    except ValueError:
        pass
    line = f"{stamp} {event.get('type')} {event.get('action')} {event.get('id')}"
    return line + (f" ({attributes})" if attributes else "")


def register(app: typer.Typer) -> None:
    @app.command("events")
    def events_cmd(
        ctx: typer.Context,
        as_json: Annotated[
            bool, typer.Option("--json", help="Output events as a stream of json objects")
        ] = False,
    ) -> None:
        """Receive real time events from containers."""
        handle, _ = project_handle(ctx, need_files=False)

        def show(event: dict[str, Any]) -> None:
            sys.stdout.write(
                (json.dumps(event, separators=(",", ":")) if as_json else format_event(event)) + "\n"
            )
            sys.stdout.flush()

        try:
            handle.request("events", on_event=show)
        except KeyboardInterrupt:
            return
