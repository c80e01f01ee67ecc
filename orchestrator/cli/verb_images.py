"""Image verbs that need no project: ``orc images``, ``orc image ls|rm|prune|load|inspect``, ``orc pull REF``.

Owned here: argument parsing, the progress display (rich per-layer bars on a terminal, plain
lines, JSON lines for CI, or ``--quiet``) and the table/JSON listings. The work is done by
``orchestrator.runtime.images`` (store, driver). The images root is ``<root>/lib/images`` with
``--root``, else ``/var/lib/orc/images``. Environment read here (the CLI is the only layer that may):
``DOCKER_CONFIG`` (credentials), ``ORC_INSECURE_REGISTRIES`` (comma list), ``ORC_CERTS_DIR``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.errors import UsageError

if TYPE_CHECKING:
    from orchestrator.runtime.images.driver import LocalImages
    from orchestrator.runtime.images.pull import PullEvent
    from orchestrator.runtime.images.store import Image, ImageStore

image_app = typer.Typer(name="image", help="Manage images.", no_args_is_help=True, add_completion=False)


def images_root(ctx: typer.Context) -> Path:
    from orchestrator.cli.app import global_options

    root = global_options(ctx).root
    return Path(root) / "lib" / "images" if root else Path("/var/lib/orc/images")


def open_store(ctx: typer.Context) -> ImageStore:
    from orchestrator.runtime.images.store import ImageStore

    return ImageStore(images_root(ctx))


def open_driver(ctx: typer.Context, base_dir: Path | None = None) -> LocalImages:
    """The images driver configured from the environment (credentials, insecure hosts, CA dirs)."""
    from orchestrator.runtime.images.driver import LocalImages
    from orchestrator.runtime.images.registry import options_from_environment

    options = options_from_environment(os.environ, Path.home())
    return LocalImages(open_store(ctx), registry_options=options, base_dir=base_dir or Path.cwd())


# --- progress ---------------------------------------------------------------------------------


class PullProgress:
    """Renders :class:`PullEvent` streams: ``tty`` (rich bars), ``plain``, ``json`` or ``quiet``."""

    def __init__(self, mode: str) -> None:
        if mode == "auto":
            mode = "tty" if sys.stderr.isatty() else "plain"
        if mode not in ("tty", "plain", "json", "quiet"):
            raise UsageError(f"invalid --progress {mode!r}: want auto, tty, plain, json or quiet")
        self.mode = mode
        self._progress: Any = None
        self._tasks: dict[tuple[str, str], Any] = {}
        self._last_plain: dict[tuple[str, str], str] = {}

    def __enter__(self) -> PullProgress:
        if self.mode == "tty":
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event: PullEvent) -> None:
        if self.mode == "quiet":
            return
        if self.mode == "json":
            record = {
                "time": round(time.time(), 3),
                "event": event.kind,
                "image": event.reference,
                "layer": event.layer,
                "current": event.current,
                "total": event.total,
            }
            if event.message:
                record["message"] = event.message
            print(json.dumps(record), flush=True)
            return
        short = (event.layer or "").removeprefix("sha256:")[:12]
        if self.mode == "plain":
            if event.kind == "downloading" and event.current not in (0, event.total):
                return
            text = {
                "resolved": f"{event.reference}: resolved {event.message}",
                "exists": f"{short}: already exists",
                "waiting": f"{short}: waiting",
                "downloading": f"{short}: downloading {event.current}/{event.total}",
                "extracting": f"{short}: extracting",
                "done": f"{short}: pull complete",
                "pulled": f"{event.reference}: pulled {event.message}",
            }[event.kind]
            key = (event.reference, event.layer or "")
            if self._last_plain.get(key) != text:
                self._last_plain[key] = text
                print(text, file=sys.stderr, flush=True)
            return
        progress = self._progress
        if event.layer is None:
            progress.console.print(f"{event.reference}: {event.kind} {event.message}", highlight=False)
            return
        key = (event.reference, event.layer)
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = progress.add_task(short, total=event.total or None)
        labels = {"exists": "exists", "done": "complete", "extracting": "extracting"}
        description = f"{short} {labels.get(event.kind, event.kind)}"
        progress.update(task, completed=event.current, total=event.total or None, description=description)


def run_pull(ctx: typer.Context, sources: list[str], platform: str | None, progress_mode: str) -> list[Image]:
    """Pull ``sources`` concurrently with one progress display; raises the first error."""
    import anyio

    driver = open_driver(ctx)
    results: dict[int, Image] = {}

    async def main() -> None:
        async with driver:
            with PullProgress(progress_mode) as progress:
                async with anyio.create_task_group() as tg:
                    for i, source in enumerate(sources):

                        async def one(i: int = i, source: str = source) -> None:
                            results[i] = await driver.pull(source, platform=platform, on_event=progress)

                        tg.start_soon(one)

    try:
        anyio.run(main)
    except BaseExceptionGroup as group:
        first = group.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [results[i] for i in range(len(sources))]


# --- listings ---------------------------------------------------------------------------------


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.3g}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1000
    return f"{size:.3g}TB"


def _rows(store: ImageStore) -> list[dict[str, Any]]:
    from orchestrator.runtime.images.store import repository_of

    rows = []
    for image in store.images():
        names = image.references or ("<none>",)
        for name in names:
            repo = repository_of(name) if name != "<none>" else "<none>"
            base = name.split("@")[0]
            tag = base[len(repo) + 1 :] if name != "<none>" and len(base) > len(repo) else "<none>"
            record = store.ref(name) if name != "<none>" else None
            rows.append(
                {
                    "Repository": repo,
                    "Tag": tag,
                    "ID": image.id,
                    "Digest": record.digest if record and record.digest else "",
                    "Platform": image.platform,
                    "Size": image.size,
                    "Created": image.created or "",
                    "LastPulled": record.pulled_at if record else None,
                }
            )
    return rows


def list_images(ctx: typer.Context, output_format: str, quiet: bool) -> None:
    rows = _rows(open_store(ctx))
    if quiet:
        for image_id in dict.fromkeys(r["ID"] for r in rows):
            typer.echo(image_id.removeprefix("sha256:")[:12])
        return
    if output_format == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    if output_format != "table":
        raise UsageError(f"invalid --format {output_format!r}: want table or json")
    header = ("REPOSITORY", "TAG", "IMAGE ID", "PLATFORM", "SIZE")
    table = [header] + [
        (
            r["Repository"],
            r["Tag"],
            r["ID"].removeprefix("sha256:")[:12],
            r["Platform"],
            _human_size(r["Size"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        typer.echo("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


# --- verbs ------------------------------------------------------------------------------------

FormatOption = Annotated[str, typer.Option("--format", help="Output format: table or json")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only show image IDs")]


def images_cmd(ctx: typer.Context, output_format: FormatOption = "table", quiet: QuietOption = False) -> None:
    """List images in orc's image store."""
    list_images(ctx, output_format, quiet)


@image_app.command("ls")
def image_ls(ctx: typer.Context, output_format: FormatOption = "table", quiet: QuietOption = False) -> None:
    """List images in orc's image store."""
    list_images(ctx, output_format, quiet)


@image_app.command("rm")
def image_rm(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(metavar="IMAGE...", help="Names or IDs")],
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Remove the image even if containers use it")
    ] = False,
) -> None:
    """Remove images (a name removes that name; the image goes when no name is left)."""
    from orchestrator.errors import NotFoundError
    from orchestrator.runtime.images.reference import InvalidReference, parse_image_source

    store = open_store(ctx)
    for name in names:
        try:
            key = str(parse_image_source(name, Path.cwd()))
        except InvalidReference:
            key = name  # an image id or id prefix
        record = store.ref(key)
        if record is not None:
            image_id = record.image
            held = store.holders(image_id)
            if held and not force and sum(1 for r in store.refs() if r.image == image_id) == 1:
                from orchestrator.errors import ConflictError

                raise ConflictError(
                    f"image {name} is in use by container(s) {', '.join(held[:3])}; use --force"
                )
            store.untag(key)
            typer.echo(f"Untagged: {key}")
            if not any(r.image == image_id for r in store.refs()):
                store.delete_image(image_id, force=force)
                typer.echo(f"Deleted: {image_id}")
            continue
        image = store.lookup(name)
        if image is None:
            raise NotFoundError(f"no such image: {name}")
        for untagged in store.delete_image(image.id, force=force):
            typer.echo(f"Untagged: {untagged}")
        typer.echo(f"Deleted: {image.id}")


@image_app.command("prune")
def image_prune(
    ctx: typer.Context,
    all_images: Annotated[
        bool, typer.Option("--all", "-a", help="Remove all images no container uses")
    ] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Do not prompt for confirmation")] = False,
) -> None:
    """Remove unused images: unnamed ones (with --all: every image no container holds)."""
    store = open_store(ctx)
    if not force and sys.stdin.isatty():
        what = "all images without at least one container" if all_images else "all dangling images"
        if not typer.confirm(f"WARNING! This will remove {what}. Are you sure you want to continue?"):
            return
    removed = 0
    for image in store.images():
        if store.holders(image.id):
            continue
        if all_images or not image.references:
            store.delete_image(image.id)
            typer.echo(f"Deleted: {image.id}")
            removed += 1
    layers, freed = store.collect_garbage()
    typer.echo(f"Total reclaimed space: {_human_size(freed)} ({removed} images, {layers} layers)")


@image_app.command("load")
def image_load(
    ctx: typer.Context,
    input_file: Annotated[str, typer.Option("--input", "-i", help="Read from a tar archive file")],
    platform: Annotated[str | None, typer.Option("--platform", help="Platform to load from an index")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Suppress the load output")] = False,
) -> None:
    """Load an image from a docker-save or OCI archive (or an OCI layout directory)."""
    from orchestrator.runtime.images.archive import import_archive
    from orchestrator.runtime.images.reference import ArchiveSource, Platform, host_platform

    path = Path(input_file).resolve()
    if path.is_dir():
        source = ArchiveSource("oci", str(path))
    else:
        import tarfile

        from orchestrator.errors import NotFoundError, PermanentError

        try:
            with tarfile.open(path, "r:*") as tar:
                names = set(tar.getnames())
        except FileNotFoundError as exc:
            raise NotFoundError(f"{input_file}: no such file") from exc
        except (OSError, tarfile.TarError) as exc:
            raise PermanentError(f"{input_file} is not an image archive: {exc}") from exc
        transport = (
            "docker-archive" if "manifest.json" in names or "./manifest.json" in names else "oci-archive"
        )
        source = ArchiveSource(transport, str(path))  # type: ignore[arg-type]
    store = open_store(ctx)
    image = import_archive(
        store, source, Platform.parse(platform) if platform else host_platform(), name_by_source=False
    )
    if not quiet:
        for name in image.references:
            typer.echo(f"Loaded image: {name}")
        typer.echo(f"Loaded image ID: {image.id}")


@image_app.command("inspect")
def image_inspect(
    ctx: typer.Context, names: Annotated[list[str], typer.Argument(metavar="IMAGE...")]
) -> None:
    """Show image details (config, layers, names) as JSON."""
    from dataclasses import asdict

    from orchestrator.errors import NotFoundError

    driver = open_driver(ctx)
    out = []
    for name in names:
        image = driver.get(name)
        if image is None:
            raise NotFoundError(f"no such image: {name}")
        doc = asdict(image)
        doc["lower_dirs"] = [str(p) for p in image.lower_dirs]
        out.append(doc)
    typer.echo(json.dumps(out, indent=2, default=str))


def pull_refs_cmd(
    ctx: typer.Context,
    refs: list[str],
    platform: str | None,
    quiet: bool,
    progress: str,
) -> None:
    """``orc pull REF...``: pull bare references (or import archive transports)."""
    if not refs:
        raise UsageError("orc pull needs an image reference (project-wide pull needs a compose file)")
    mode = "quiet" if quiet else progress
    images = run_pull(ctx, refs, platform, mode)
    if not quiet and mode != "json":
        for ref, image in zip(refs, images, strict=True):
            typer.echo(f"{ref}: {image.id}")


# --- project-level: pull, lock, resolve digests ------------------------------------------------


def _try_load_project(ctx: typer.Context, required: bool = False) -> Any | None:
    """The project if a compose file is given or found, else None (then arguments are references).

    A broken compose file is an error when ``-f`` names it or ``required``; otherwise ignored.
    """
    from orchestrator.cli.app import global_options
    from orchestrator.errors import StackError

    try:
        from orchestrator.cli.project import load_project_from_cli
    except ImportError:
        return None
    try:
        return load_project_from_cli(ctx)
    except StackError:
        if required or global_options(ctx).files:
            raise
        return None


def project_images(project: Any, services: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """service → {image, platform, pull_policy, has_build} for the project's services with an image."""
    stack = project.stack
    names = services or sorted(stack.services)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        service = stack.service(name)
        if not service.image:
            continue
        out[name] = {
            "image": service.image,
            "platform": service.platform,
            "pull_policy": service.pull_policy,
            "has_build": service.build is not None,
        }
    return out


def pull_project(
    ctx: typer.Context,
    project: Any,
    services: list[str],
    *,
    quiet: bool,
    progress: str,
    ignore_pull_failures: bool,
    ignore_buildable: bool,
) -> None:
    """``orc pull [SERVICE...]`` in a project: each distinct (image, platform) once, concurrently."""
    import anyio

    from orchestrator.errors import OrcError
    from orchestrator.runtime.images.pull import first_error

    images = project_images(project, services)
    wanted: dict[tuple[str, str | None], list[str]] = {}
    for name, item in images.items():
        if item["pull_policy"] == "build" or (ignore_buildable and item["has_build"]):
            continue
        wanted.setdefault((item["image"], item["platform"]), []).append(name)
    driver = open_driver(ctx, Path(project.working_dir))
    failures: list[str] = []
    mode = "quiet" if quiet else progress

    async def main() -> None:
        async with driver:
            with PullProgress(mode) as bar:
                async with anyio.create_task_group() as tg:
                    for (image, platform), users in sorted(wanted.items(), key=lambda kv: kv[0][0]):

                        async def one(
                            image: str = image, platform: str | None = platform, users: list[str] = users
                        ) -> None:
                            try:
                                await driver.pull(image, platform=platform, on_event=bar)
                            except Exception as exc:
                                if not ignore_pull_failures or not isinstance(exc, OrcError):
                                    raise
                                failures.append(f"{', '.join(users)}: {exc}")

                        tg.start_soon(one)

    try:
        anyio.run(main)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    for failure in failures:
        print(f"warning: pull failed for {failure}", file=sys.stderr)


def lock_cmd_impl(ctx: typer.Context, output: str | None, check: bool) -> None:
    """``orc lock``: pin every service image to its digest in ``compose.lock`` (or check it)."""
    import anyio

    from orchestrator.runtime.images.lock import check_lock, create_lock, lock_path, parse_lock, render_lock

    project = _try_load_project(ctx, required=True)
    assert project is not None
    images = project_images(project)
    path = Path(output) if output else lock_path(Path(project.files[0]))
    if check:
        from orchestrator.errors import StackError

        if not path.exists():
            raise StackError(f"{path}: no lock file; run `orc lock`")
        problems = check_lock(
            {n: i["image"] for n, i in images.items()}, parse_lock(path.read_text(), str(path)), str(path)
        )
        if problems:
            raise StackError(problems)
        typer.echo(f"{path} matches the compose file")
        return
    driver = open_driver(ctx, Path(project.working_dir))

    async def main() -> str:
        async with driver:
            lock = await create_lock(
                driver,
                {n: i["image"] for n, i in images.items()},
                {n: i["platform"] for n, i in images.items()},
            )
            return render_lock(lock)

    text = anyio.run(main)
    from orchestrator.runtime.images.store import atomic_write

    atomic_write(path, text.encode())
    typer.echo(f"wrote {path} ({len(images)} service images pinned)")


def resolve_project_image_digests(ctx: typer.Context, project: Any) -> dict[str, str]:
    """service → ``name:tag@sha256:…`` for ``orc config --resolve-image-digests`` (the config verb wires it)."""
    import anyio

    from orchestrator.runtime.images.lock import resolve_image_digests

    driver = open_driver(ctx, Path(project.working_dir))
    images = {n: i["image"] for n, i in project_images(project).items()}

    async def main() -> dict[str, str]:
        async with driver:
            return await resolve_image_digests(driver, images)

    return anyio.run(main)


def register(app: typer.Typer) -> None:
    app.command("images")(images_cmd)
    app.add_typer(image_app, name="image")

    @app.command("pull")
    def pull_cmd(
        ctx: typer.Context,
        refs: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE|IMAGE...]")] = None,
        platform: Annotated[str | None, typer.Option("--platform", help="os/arch[/variant] to pull")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Pull without printing progress")] = False,
        progress: Annotated[str, typer.Option("--progress", help="auto, tty, plain, json or quiet")] = "auto",
        ignore_pull_failures: Annotated[
            bool,
            typer.Option(
                "--ignore-pull-failures", help="Pull what it can and ignore images with pull failures"
            ),
        ] = False,
        ignore_buildable: Annotated[
            bool, typer.Option("--ignore-buildable", help="Ignore images that can be built")
        ] = False,
    ) -> None:
        """Pull service images of the project, or the given image references."""
        args = list(refs or [])
        # service names cannot hold '/', ':' or '@': such arguments are references, no project needed
        if args and any(c in a for a in args for c in "/:@"):
            pull_refs_cmd(ctx, args, platform, quiet, progress)
            return
        project = _try_load_project(ctx, required=not args)
        if project is not None and all(a in project.stack.services for a in args):
            pull_project(
                ctx,
                project,
                args,
                quiet=quiet,
                progress=progress,
                ignore_pull_failures=ignore_pull_failures,
                ignore_buildable=ignore_buildable,
            )
            return
        pull_refs_cmd(ctx, args, platform, quiet, progress)

    @app.command("lock")
    def lock_cmd(
        ctx: typer.Context,
        output: Annotated[
            str | None,
            typer.Option(
                "--output", "-o", help="Lock file (default: compose.lock beside the first compose file)"
            ),
        ] = None,
        check: Annotated[
            bool, typer.Option("--check", help="Only check that the lock file matches the compose file")
        ] = False,
    ) -> None:
        """Pin every service image to its manifest digest in compose.lock."""
        lock_cmd_impl(ctx, output, check)
