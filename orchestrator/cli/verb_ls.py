"""``orc ls`` and ``orc create``.

``ls`` lists the projects recorded under the runtime root with a status summary (``running(2),
exited(1)``) and their Compose files, from the state files alone; ``create`` is ``up --no-start``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any

import typer

from orchestrator.cli.lifecycle import (
    finish,
    global_options,
    print_event,
    project_handle,
    project_payload,
    pull_option,
    roots,
)
from orchestrator.errors import UsageError


def register(app: typer.Typer) -> None:
    @app.command("ls")
    def ls_cmd(
        ctx: typer.Context,
        all_: Annotated[bool, typer.Option("--all", "-a", help="Show all stopped Compose projects")] = False,
        format_: Annotated[str, typer.Option("--format", help="table or json")] = "table",
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only display project names")] = False,
    ) -> None:
        """List running compose projects."""
        from orchestrator.daemon.handle import ProjectHandle

        if format_ not in ("table", "json"):
            raise UsageError(f"unsupported --format {format_!r}: table or json")
        rows = []
        for name in ProjectHandle(roots(ctx), "x").store.list_projects():
            handle = ProjectHandle(roots(ctx), name)
            counts = Counter(r.status for r in handle.containers())
            if not all_ and not counts.get("running"):
                continue
            record = handle.store.load_project(name)
            status = ", ".join(f"{state}({count})" for state, count in sorted(counts.items()))
            rows.append((name, status, ",".join(record.config_files) if record else ""))
        if quiet:
            for name, _, _ in rows:
                typer.echo(name)
        elif format_ == "json":
            typer.echo(json.dumps([{"Name": n, "Status": s, "ConfigFiles": f} for n, s, f in rows]))
        else:
            table = [("NAME", "STATUS", "CONFIG FILES"), *rows]
            widths = [max(len(row[i]) for row in table) for i in range(3)]
            for row in table:
                typer.echo("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())

    @app.command("create")
    def create_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
        force_recreate: Annotated[bool, typer.Option("--force-recreate")] = False,
        no_recreate: Annotated[bool, typer.Option("--no-recreate")] = False,
        remove_orphans: Annotated[bool, typer.Option("--remove-orphans")] = False,
        pull: Annotated[str | None, typer.Option("--pull")] = None,
    ) -> None:
        """Creates containers for a service."""
        if force_recreate and no_recreate:
            raise UsageError("--force-recreate and --no-recreate are incompatible")
        options = {
            "force_recreate": force_recreate,
            "no_recreate": no_recreate,
            "remove_orphans": remove_orphans,
            "no_start": True,
            "pull": pull_option(pull),
        }
        if global_options(ctx).dry_run:
            from orchestrator.cli.verb_up import print_plan

            plan_options: dict[str, Any] = {
                "no_deps": False,
                "always_recreate_deps": False,
                "scale": {},
                **options,
            }
            print_plan(ctx, list(services or []), plan_options)
            return
        handle, loaded = project_handle(ctx)
        finish(handle.up(project_payload(loaded), list(services or []), options, on_event=print_event))
