"""``orc doctor``: check this host for what orc needs, one line per feature, with the fix.

The checks live in ``orchestrator.runtime.doctor``; this module picks the state roots (``--root``),
reads the registry settings from the environment (``ORC_INSECURE_REGISTRIES``, ``ORC_CERTS_DIR``,
``DOCKER_CONFIG``, as ``orc pull`` does) and renders the results: a rich table on a terminal,
aligned plain lines otherwise, or JSON with ``--format json``. Exit status 1 when something
required is missing, else 0. Everything but typer is imported inside the command (cold start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from orchestrator.runtime.doctor import CheckResult
    from orchestrator.runtime.images.registry import RegistryOptions

FORMATS = ("table", "plain", "json")


def _registry_options() -> RegistryOptions:
    import os
    from pathlib import Path

    from orchestrator.runtime.images.auth import Credentials
    from orchestrator.runtime.images.registry import DEFAULT_CERTS_DIRS, RegistryOptions

    docker_config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    insecure = frozenset(
        h.strip() for h in os.environ.get("ORC_INSECURE_REGISTRIES", "").split(",") if h.strip()
    )
    certs = (Path(os.environ["ORC_CERTS_DIR"]),) if os.environ.get("ORC_CERTS_DIR") else DEFAULT_CERTS_DIRS
    return RegistryOptions(
        credentials=Credentials(docker_config), certs_dirs=certs, insecure_registries=insecure
    )


def plain_lines(results: list[CheckResult]) -> list[str]:
    """``STATUS  CHECK  summary (fix: ...)``, columns aligned, one line per check."""
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        line = f"{r.status.value:<4}  {r.name:<{width}}  {r.summary}"
        if r.fix:
            line += f"  (fix: {r.fix})"
        lines.append(line)
    return lines


def _print_table(results: list[CheckResult]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    styles = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
    table = Table(show_header=True, header_style="bold", show_lines=False)
    table.add_column("")
    table.add_column("check", no_wrap=True)
    table.add_column("what this host has / how to fix it")
    for r in results:
        details = Text(r.summary)
        if r.fix:
            details.append("\nfix: ", style="bold")
            details.append(r.fix, style="cyan")
        table.add_row(Text(r.status.value, style=styles[r.status.value]), r.name, details)
    Console().print(table)


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor_cmd(
        ctx: typer.Context,
        format_: Annotated[
            str,
            typer.Option(
                "--format", metavar="FORMAT", help="table (rich on a terminal, else plain), plain or json"
            ),
        ] = "table",
        registry: Annotated[
            str | None,
            typer.Option("--registry", metavar="HOST", help="Also check that this registry answers /v2/"),
        ] = None,
    ) -> None:
        """Check what orc needs on this host and how to fix what is missing."""
        import json
        import sys

        from orchestrator.cli.app import global_options
        from orchestrator.daemon.handle import Roots
        from orchestrator.errors import UsageError
        from orchestrator.runtime.doctor import DoctorOptions, LocalHost, diagnose, exit_code

        if format_ not in FORMATS:
            raise UsageError(f"unsupported --format {format_!r}: table, plain or json")
        roots = Roots.from_option(global_options(ctx).root)
        host = LocalHost(registry_options=_registry_options() if registry else None)
        results = diagnose(host, DoctorOptions(run_root=roots.run, lib_root=roots.lib, registry=registry))
        code = exit_code(results)
        if format_ == "json":
            typer.echo(json.dumps({"ok": code == 0, "checks": [r.to_json() for r in results]}, indent=2))
        elif format_ == "table" and sys.stdout.isatty():
            _print_table(results)
        else:
            for line in plain_lines(results):
                typer.echo(line)
        raise typer.Exit(code)
