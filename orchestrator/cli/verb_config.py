"""``orc config``: parse, resolve and print the Compose project in canonical form.

Owns the verb's flags and output: the canonical document as YAML or JSON (byte-compatible with
``docker compose config``), or one of the listings (``--services``, ``--volumes``, ``--profiles``,
``--images``, ``--hash``). Loading goes through :func:`orchestrator.cli.project.load_project_from_cli`;
dependency cycles are reported by the planner's graph when that module is present.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from orchestrator.errors import UsageError


def _escape_dollars(text: str) -> str:
    return text.replace("$", "$$")


def _dependency_order(services: dict[str, Any]) -> list[str]:
    """Service names with every service after the ones it depends on (ties by name)."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in services:
            return
        seen.add(name)
        for dep in sorted((services[name].get("depends_on") or {}).keys()):
            visit(dep)
        ordered.append(name)

    for name in sorted(services):
        visit(name)
    return ordered


def _check_dependencies(project: Any) -> None:
    """Undefined dependencies and cycles fail ``config`` as they fail docker-compose's."""
    from orchestrator.planner.graph import DependencyGraph

    DependencyGraph.from_stack(project.stack)


def register(app: typer.Typer) -> None:
    @app.command("config")
    def config_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
        format_: Annotated[
            str | None, typer.Option("--format", help="Format the output. Values: [yaml | json]")
        ] = None,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Only validate the configuration, don't print anything")
        ] = False,
        no_interpolate: Annotated[
            bool, typer.Option("--no-interpolate", help="Don't interpolate environment variables")
        ] = False,
        list_services: Annotated[
            bool, typer.Option("--services", help="Print the service names, one per line.")
        ] = False,
        list_volumes: Annotated[
            bool, typer.Option("--volumes", help="Print the volume names, one per line.")
        ] = False,
        list_profiles: Annotated[
            bool, typer.Option("--profiles", help="Print the profile names, one per line.")
        ] = False,
        list_images: Annotated[
            bool, typer.Option("--images", help="Print the image names, one per line.")
        ] = False,
        hash_: Annotated[
            str | None,
            typer.Option("--hash", metavar="SERVICE", help="Print the service config hash, one per line."),
        ] = None,
        output: Annotated[
            str | None, typer.Option("--output", "-o", help="Save to file (default to stdout)")
        ] = None,
    ) -> None:
        """Parse, resolve and render the Compose file in canonical format."""
        from orchestrator.cli.project import load_project_from_cli

        if format_ not in (None, "yaml", "json"):
            raise UsageError(f'unsupported format "{format_}"')
        selection = list(services or [])

        def emit(text: str) -> None:
            if quiet:
                return
            if output:
                with open(output, "w", encoding="utf-8") as f:
                    f.write(text)
            else:
                typer.echo(text, nl=False)

        if hash_ is not None:
            project = load_project_from_cli(ctx, resolve_env_files=False)
            _check_dependencies(project)
            names = sorted(project.config_hashes) if hash_ == "*" else sorted(hash_.split(","))
            lines = []
            for name in names:
                if name not in project.config_hashes:
                    raise UsageError(f"no such service: {name}")
                lines.append(f"{name} {project.config_hashes[name]}\n")
            emit("".join(lines))
            return
        if list_profiles:
            project = load_project_from_cli(ctx, resolve_env_files=False)
            _check_dependencies(project)
            profiles: set[str] = set()
            for service in [*project.records["services"].values(), *project.disabled_services.values()]:
                profiles.update(service.get("profiles") or [])
            emit("".join(f"{p}\n" for p in sorted(profiles)))
            return
        project = load_project_from_cli(
            ctx,
            interpolate=not no_interpolate,
            resolve_env_files=not (list_services or list_volumes or list_images),
        )
        _check_dependencies(project)
        if selection:
            missing = [s for s in selection if s not in project.records["services"]]
            if missing:
                raise UsageError(f"no such service: {missing[0]}")
        if list_services:
            emit("".join(f"{n}\n" for n in _dependency_order(project.records["services"])))
            return
        if list_volumes:
            emit("".join(f"{n}\n" for n in sorted(project.records["volumes"])))
            return
        if list_images:
            lines = []
            for name in sorted(project.records["services"]):
                image = project.records["services"][name].get("image") or f"{project.name}-{name}"
                lines.append(f"{image}\n")
            emit("".join(lines))
            return
        text = project.json_text() if format_ == "json" else project.yaml_text()
        if not no_interpolate:
            text = _escape_dollars(text)
        emit(text)


def document_json(document: dict[str, Any]) -> str:
    """Plain-data document as indented JSON (used by tests and the API)."""
    return json.dumps(document, indent=2)
