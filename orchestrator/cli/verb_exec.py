"""``orc exec``: run a command in a running service container, through its supervisor.

The CLI hands its own stdin, stdout and stderr to the supervisor over the control socket
(SCM_RIGHTS), so the command reads and writes them directly: output streams as it comes and pipes
work (``echo hi | orc exec -T web cat``). When stdin is a terminal a pseudo-terminal is allocated
(``-T`` turns that off): the local terminal is put in raw mode for the command's duration and the
supervisor shuttles bytes between it and the terminal's master end (``terminal_for``). The
command's exit code becomes orc's.
"""

from __future__ import annotations

import contextlib
import os
import sys
import termios
import tty
from collections.abc import Iterator
from typing import Annotated

import typer

from orchestrator.cli.lifecycle import project_handle
from orchestrator.errors import UsageError


@contextlib.contextmanager
def terminal_for(wanted: bool, fd: int = 0) -> Iterator[bool]:
    """Raw mode on ``fd`` while the block runs, when a terminal is ``wanted`` and ``fd`` is one;
    yields whether a terminal is used. The old mode comes back however the block ends."""
    if not wanted or not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def register(app: typer.Typer) -> None:
    @app.command("exec", context_settings={"allow_interspersed_args": False})
    def exec_cmd(
        ctx: typer.Context,
        service: Annotated[str, typer.Argument(metavar="SERVICE")],
        command: Annotated[list[str], typer.Argument(metavar="COMMAND [ARGS...]")],
        index: Annotated[int, typer.Option("--index", help="Index of the container")] = 1,
        env: Annotated[
            list[str] | None, typer.Option("--env", "-e", help="Set environment variables")
        ] = None,
        user: Annotated[str | None, typer.Option("--user", "-u", help="Run the command as this user")] = None,
        workdir: Annotated[str | None, typer.Option("--workdir", "-w", help="Working directory")] = None,
        privileged: Annotated[bool, typer.Option("--privileged", help="Give extended privileges")] = False,
        no_tty: Annotated[bool, typer.Option("--no-TTY", "-T", help="Disable pseudo-TTY allocation")] = False,
        detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background")] = False,
    ) -> None:
        """Execute a command in a running container."""
        if detach:
            raise UsageError("exec --detach is not supported yet")
        environment: dict[str, str] = {}
        for item in env or []:
            key, sep, value = item.partition("=")
            if not key:
                raise UsageError(f"invalid --env {item!r}: expected KEY=VALUE")
            environment[key] = value if sep else ""
        handle, _ = project_handle(ctx, need_files=False)
        record = handle.container_for(service, index)
        sys.stdout.flush()
        with terminal_for(not no_tty) as on_terminal:
            result = handle.request(
                "exec",
                start=True,  # after a supervisor crash the next one adopts the container first
                container=record.name,
                argv=list(command),
                attach=True,
                env=environment,
                user=user,
                workdir=workdir,
                privileged=privileged,
                tty=on_terminal,
                pass_fds=(0, 1, 2),
            )
        code = int(result.get("exit_code", 0))
        if code:
            raise typer.Exit(code)
