"""The global options every verb shares, without typer.

Owned here: :class:`GlobalOptions` (what the app's callback parses), :func:`global_options` (the
options of the running command, from typer's context or a :class:`PlainContext`) and
:func:`report_error` (an :class:`~orchestrator.errors.OrcError` as one line on stderr). The typer
app (``cli.app``) and the typer-free path of the hottest verbs (``cli.fast``) both use them, so
the verbs' behaviour does not depend on which one parsed the command line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.errors import OrcError


@dataclass
class GlobalOptions:
    """Options every verb shares, as given on the command line (before any defaulting)."""

    files: list[str] = field(default_factory=list)
    project_name: str | None = None
    project_directory: str | None = None
    profiles: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    root: str | None = None
    progress: str = "auto"
    ansi: str = "auto"
    parallel: int | None = None
    dry_run: bool = False


class CommandContext(Protocol):
    """What the verbs use of typer's (click's) context: the root's ``obj``."""

    obj: Any

    def find_root(self) -> CommandContext: ...


class PlainContext:
    """What the verbs ask of typer's context (``find_root().obj``), for a command line parsed
    without typer."""

    def __init__(self, options: GlobalOptions) -> None:
        self.obj = options

    def find_root(self) -> PlainContext:
        return self


def global_options(ctx: CommandContext) -> GlobalOptions:
    """The global options of the running command (set by the app callback, or the fast path)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, GlobalOptions) else GlobalOptions()


def report_error(err: OrcError) -> int:
    """Print ``err`` as the CLI does (one line, or a block for several) and return its exit code."""
    text = str(err)
    print(f"error: {text}" if "\n" not in text else f"error:\n{text}", file=sys.stderr)
    return err.exit_code
