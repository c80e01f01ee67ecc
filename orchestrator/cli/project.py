"""Loading the Compose project for any verb from the global options, the process environment and cwd.

Owns the one bridge between the command line and the pure loader: it reads ``os.environ`` and the
current directory, builds the real-disk FileSource (:class:`orchestrator.hostfs.HostFileSource`)
and calls :func:`orchestrator.stack.loader.load`. Every verb that needs the project calls
:func:`load_project_from_cli`; warnings are printed on stderr the way Docker Compose prints them.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.app import global_options
from orchestrator.errors import OrcError

if TYPE_CHECKING:
    from orchestrator.stack.loader import Project


def print_warnings(warnings: list[str]) -> None:
    """One logrus-style line per warning on stderr, as Docker Compose prints them."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for warning in warnings:
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
        print(f'time="{stamp}" level=warning msg="{escaped}"', file=sys.stderr)


def load_project_from_cli(
    ctx: typer.Context,
    *,
    interpolate: bool = True,
    resolve_env_files: bool = True,
    show_warnings: bool = True,
    services: tuple[str, ...] = (),
) -> Project:
    """The project the global options (-f -p --project-directory --profile --env-file) describe."""
    from orchestrator.hostfs import HostFileSource
    from orchestrator.stack.loader import LoadOptions, load

    options = global_options(ctx)
    load_options = LoadOptions(
        cwd=os.getcwd(),
        environ=dict(os.environ),
        files=tuple(options.files),
        project_name=options.project_name,
        project_directory=options.project_directory,
        profiles=tuple(options.profiles),
        env_files=tuple(options.env_files),
        interpolate=interpolate,
        resolve_env_files=resolve_env_files,
        home=os.environ.get("HOME"),
        services=services,
    )
    try:
        project = load(load_options, HostFileSource())
    except OrcError as err:
        # what was noticed before the failure (unset variables...) still helps
        if show_warnings:
            print_warnings(list(getattr(err, "warnings", [])))
        raise
    if show_warnings:
        print_warnings(project.warnings)
    return project
