"""``orc wait SERVICE...``: block until the services' containers stop; print their exit codes.

Reads the state files (no supervisor request): a container counts as stopped once its record
is no longer running, or its process changed since the wait began (a restart policy brought it
back between two looks). Each stop is reported on stderr in the order the containers stopped, in
Docker Compose v2.40's words (``container "<id>" exited with status code 7``), and the command
exits 0 as it does. ``--down-project`` removes the project once the first container stopped.
Called by the CLI only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Protocol

import typer

from orchestrator.cli.lifecycle import project_handle
from orchestrator.errors import UsageError

_RUNNING = ("running", "restarting", "paused", "created")
POLL_SECONDS = 0.1


class _Record(Protocol):
    name: str
    container_id: str
    service: str
    one_off: bool
    status: str
    pid: int | None
    pid_start_time: int | None
    exit_code: int | None


def stopped_containers(
    list_containers: Callable[[], Sequence[_Record]],
    services: Sequence[str],
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[str, int]]:
    """(container id, exit code) of each container of ``services`` as it stops."""
    records = [r for r in list_containers() if r.service in services and not r.one_off]
    missing = sorted(set(services) - {r.service for r in records})
    if missing:
        raise UsageError(f"no containers for service(s): {', '.join(missing)}")
    started = {r.name: (r.pid, r.pid_start_time) for r in records}
    ids = {r.name: r.container_id for r in records}
    pending = set(started)
    while pending:
        current = list(list_containers())
        for record in current:
            if record.name not in pending:
                continue
            if record.status not in _RUNNING or (record.pid, record.pid_start_time) != started[record.name]:
                pending.discard(record.name)
                yield ids[record.name], record.exit_code if record.exit_code is not None else 0
        for gone in sorted(pending - {r.name for r in current}):  # removed while we waited
            pending.discard(gone)
            yield ids[gone], 0
        if pending:
            sleep(POLL_SECONDS)


def register(app: typer.Typer) -> None:
    @app.command("wait")
    def wait_cmd(
        ctx: typer.Context,
        services: Annotated[list[str], typer.Argument(metavar="SERVICE [SERVICE...]")],
        down_project: Annotated[
            bool, typer.Option("--down-project", help="Drops project when the first container stops")
        ] = False,
    ) -> None:
        """Block until containers of all (or specified) services stop."""
        handle, _ = project_handle(ctx, need_files=False)
        for container_id, code in stopped_containers(handle.containers, services):
            typer.echo(f'container "{container_id}" exited with status code {code}', err=True)
            if down_project:
                handle.down(None)
                break
