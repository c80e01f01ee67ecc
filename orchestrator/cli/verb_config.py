"""``orc config``: parse, resolve and print the Compose project in canonical form.

Owns the verb's flags and output: the canonical document as YAML or JSON (byte-compatible with
``docker compose config``), or one of the listings (``--services``, ``--volumes``, ``--profiles``,
``--images``, ``--hash``). Loading goes through :func:`orchestrator.cli.project.load_project_from_cli`;
dependency cycles are reported by the planner's graph when that module is present.
``--resolve-image-digests`` pins every service image to the digest its registry serves now
(:func:`orchestrator.runtime.images.lock.resolve_image_digests`), as Docker Compose does.
"""

from __future__ import annotations

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
    if not project.has_dependencies():
        return  # nothing to check: skip binding the model and building the graph
    from orchestrator.errors import StackError
    from orchestrator.planner.graph import DependencyGraph

    try:
        DependencyGraph.from_stack(project.stack)
    except StackError as err:
        raise project.locate(err) from err


def _check_orc_extensions(project: Any) -> None:
    """Services' ``x-orc`` blocks are checked as ``up`` checks them (Docker Compose ignores
    ``x-`` keys, so this is orc's own), their problems named by file, line and key."""
    services = project.records.get("services") or {}
    blocks = {
        name: extensions["x-orc"]
        for name, record in services.items()
        if isinstance(record, dict)
        and isinstance(extensions := record.get("#extensions") or {}, dict)
        and "x-orc" in extensions
    }
    if not blocks:
        return
    from orchestrator.errors import StackError
    from orchestrator.model.orc_extension import parse_orc_extension

    problems = []
    for name, block in sorted(blocks.items()):
        try:
            parse_orc_extension(name, block)
        except StackError as err:
            problems.extend(err.problems)
    if problems:
        raise project.locate(StackError(problems))


def config_text(project: Any, fmt: str | None, *, interpolated: bool = True) -> str:
    """The canonical document as ``docker compose config`` prints it (``$`` doubled), or with
    ``--no-interpolate`` the untyped model as written after merging and normalisation."""
    if not interpolated:
        from orchestrator.stack import render
        from orchestrator.stack.yamlout import dump_yaml

        if fmt == "json":
            return render.to_json(_sorted_maps(project.model))
        return dump_yaml(render.yaml_sort_maps(project.model))
    text = project.json_text() if fmt == "json" else project.yaml_text()
    return _escape_dollars(text)


def _sorted_maps(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_maps(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_maps(v) for v in value]
    return value


def hash_lines(project: Any, selector: str) -> str:
    """``--hash``: ``name hash`` lines for ``*`` or a comma-separated list of services."""
    names = sorted(project.config_hashes) if selector == "*" else sorted(selector.split(","))
    lines = []
    for name in names:
        if name not in project.config_hashes:
            raise UsageError(f"no such service: {name}")
        lines.append(f"{name} {project.config_hashes[name]}\n")
    return "".join(lines)


def profile_lines(project: Any) -> str:
    """``--profiles``: every profile named by any service (enabled or not), sorted."""
    profiles: set[str] = set()
    for service in [*project.records["services"].values(), *project.disabled_services.values()]:
        profiles.update(service.get("profiles") or [])
    return "".join(f"{p}\n" for p in sorted(profiles))


def service_lines(project: Any) -> str:
    """``--services``: enabled services, each after its dependencies."""
    return "".join(f"{n}\n" for n in _dependency_order(project.records["services"]))


def volume_lines(project: Any) -> str:
    """``--volumes``: the named volumes the enabled services use."""
    return "".join(f"{n}\n" for n in sorted(project.records["volumes"]))


def image_lines(project: Any) -> str:
    """``--images``: each service's image, or ``<project>-<service>`` for build-only services."""
    services = project.records["services"]
    return "".join(f"{services[n].get('image') or f'{project.name}-{n}'}\n" for n in sorted(services))


def resolve_image_digests(ctx: typer.Context, project: Any, services: dict[str, Any]) -> None:
    """Rewrite each service's ``image`` in ``services`` (the records printed) as Docker Compose's
    ``--resolve-image-digests`` does: ``docker.io/library/redis:7@sha256:…`` for a tag (asking the
    registry), and for an image already pinned by digest only the normalised name and the digest
    (``reference.ParseDockerRef`` drops the tag of a tagged-and-digested reference)."""
    from pathlib import Path

    import anyio

    from orchestrator.cli.verb_images import open_driver
    from orchestrator.runtime.images.lock import resolve_image_digests as resolve
    from orchestrator.runtime.images.reference import Reference, parse_image_source

    images = {name: str(s["image"]) for name, s in services.items() if isinstance(s, dict) and s.get("image")}
    driver = open_driver(ctx, Path(project.working_dir))

    async def main() -> dict[str, str]:
        resolved: dict[str, str] = {}

        async def one(name: str, image: str) -> None:
            resolved.update(await resolve(driver, {name: image}))

        async with driver, anyio.create_task_group() as group:
            for name, image in sorted(images.items()):  # one registry round trip each, at once
                group.start_soon(one, name, image)
        return resolved

    try:
        pinned = anyio.run(main)
    except BaseExceptionGroup as group:
        from orchestrator.runtime.images.pull import first_error

        raise first_error(group) from None
    for name, image in pinned.items():
        written = parse_image_source(images[name])
        if isinstance(written, Reference) and written.digest:
            image = str(Reference(written.domain, written.path, None, written.digest))
        services[name]["image"] = image


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
        resolve_digests: Annotated[
            bool, typer.Option("--resolve-image-digests", help="Pin image tags to digests")
        ] = False,
    ) -> None:
        """Parse, resolve and render the Compose file in canonical format."""
        from orchestrator.cli.project import load_project_from_cli

        if format_ not in (None, "yaml", "json"):
            raise UsageError(f'unsupported format "{format_}"')
        listing = list_services or list_volumes or list_images or list_profiles or hash_ is not None
        # --no-interpolate only changes the printed document and --services
        raw = no_interpolate and (list_services or not listing)
        project = load_project_from_cli(
            ctx,
            interpolate=not raw,
            # docker-compose folds env_file into environment only when printing the document
            resolve_env_files=not listing,
            services=tuple(services or ()) if not listing else (),
        )
        if not raw:
            _check_dependencies(project)
            _check_orc_extensions(project)
        if resolve_digests and not listing:
            resolve_image_digests(ctx, project, (project.model if raw else project.records)["services"])
        if raw and list_services:
            text = "".join(f"{n}\n" for n in sorted(project.model.get("services") or {}))
        elif hash_ is not None:
            text = hash_lines(project, hash_)
        elif list_profiles:
            text = profile_lines(project)
        elif list_services:
            text = service_lines(project)
        elif list_volumes:
            text = volume_lines(project)
        elif list_images:
            text = image_lines(project)
        else:
            text = config_text(project, format_, interpolated=not raw)
        if quiet:
            return
        if output:
            try:
                with open(output, "w", encoding="utf-8") as f:
                    f.write(text)
            except OSError as exc:
                raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
        else:
            typer.echo(text, nl=False)
