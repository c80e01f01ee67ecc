"""PURE. The Compose loader pipeline: options + environment + FileSource → :class:`Project`.

Owns the order of the steps Docker Compose takes, so ``orc`` sees the same project:
environment (shell > ``.env`` of the working dir > ``.env`` of the project dir, or ``--env-file``),
file discovery (``compose.yaml``... walking up, plus the override file, or ``COMPOSE_FILE``),
the project name (``-p`` > ``COMPOSE_PROJECT_NAME`` > ``name:`` > directory), then per file and
per YAML document: interpolate → ``extends`` → ``!reset``/``!override`` → ``include`` → merge →
de-duplicate → schema → canonical form; then defaults, semantic checks, relative paths,
normalisation, profiles, consistency checks, ``env_file`` resolution and dropping unused
resources. Reads nothing but the injected :class:`~orchestrator.stack.source.FileSource` and the
``environ`` mapping it is given. Called by ``orchestrator.cli.project.load_project_from_cli``.
"""

from __future__ import annotations

import copy
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import Problem, StackError, UsageError
from orchestrator.stack import canonical as canon
from orchestrator.stack import render
from orchestrator.stack.dotenv import DotEnvError, parse_dotenv
from orchestrator.stack.interpolate import interpolate_document, substitute
from orchestrator.stack.merge import enforce_unicity, extend_service, merge_documents
from orchestrator.stack.project import Project, SourcePositions
from orchestrator.stack.source import FileSource
from orchestrator.stack.yamlsrc import GoTime, YamlDocument, YamlTimestamp, format_path, parse_documents

DEFAULT_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
DEFAULT_OVERRIDE_NAMES = (
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
)


@dataclass(frozen=True)
class LoadOptions:
    """What the user asked for. Paths may be relative to ``cwd``; ``cwd`` must be absolute."""

    cwd: str
    environ: Mapping[str, str]
    files: Sequence[str] = ()
    project_name: str | None = None
    project_directory: str | None = None
    profiles: Sequence[str] = ()
    env_files: Sequence[str] = ()
    interpolate: bool = True
    resolve_env_files: bool = True
    home: str | None = None
    services: Sequence[str] = ()


_NAME_CHARS = re.compile(r"[a-z0-9_-]")


# Service keys that have a twin under deploy.resources: both set to different values is an error.
_DEPLOY_TWINS = (
    ("cpus", "limits", "cpus"),
    ("mem_limit", "limits", "memory"),
    ("mem_reservation", "reservations", "memory"),
    ("pids_limit", "limits", "pids"),
)


def normalize_project_name(name: str) -> str:
    """Lowercase, keep ``[a-z0-9_-]``, strip leading ``_``/``-`` (Compose's rule)."""
    return "".join(_NAME_CHARS.findall(name.lower())).lstrip("_-")


def invalid_project_name(name: str) -> UsageError:
    return UsageError(
        f'invalid project name "{name}": must consist only of lowercase alphanumeric characters, '
        "hyphens, and underscores as well as start with a letter or number"
    )


def _abs(path: str, base: str) -> str:
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(base, path))


def _parse_bool(text: str) -> bool:
    low = text.strip()
    if low in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if low in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise UsageError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


class _Context(SourcePositions):
    """State shared by one load: file reads, warnings, positions of every document."""

    def __init__(self, source: FileSource, options: LoadOptions) -> None:
        super().__init__()
        self.source = source
        self.options = options
        self.warnings: list[str] = []
        self.doc_cache: dict[str, list[YamlDocument]] = {}

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def read(self, path: str) -> str:
        try:
            return self.source.read_text(path)
        except FileNotFoundError as exc:
            raise StackError(Problem("no such file or directory", file=path)) from exc
        except IsADirectoryError as exc:
            raise StackError(Problem("is a directory, not a file", file=path)) from exc
        except UnicodeDecodeError as exc:
            raise StackError(
                Problem(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path)
            ) from exc
        except OSError as exc:
            raise StackError(Problem(str(exc.strerror or exc), file=path)) from exc

    def documents(self, path: str) -> list[YamlDocument]:
        if path not in self.doc_cache:
            docs = parse_documents(self.read(path), path)
            self.doc_cache[path] = docs
            for doc in docs:
                self.positions.append((path, {format_path(p): lc for p, lc in doc.positions.items()}))
        # every caller mutates what it gets: hand out copies
        return [
            YamlDocument(copy.deepcopy(d.value), d.positions, d.reset_paths, d.override_paths)
            for d in self.doc_cache[path]
        ]

    def env_from_files(self, environment: Mapping[str, str], files: Sequence[str]) -> dict[str, str]:
        """compose-go's GetEnvFromFile: variables of the files; ``environment`` feeds expansions."""
        out: dict[str, str] = {}
        for path in files:
            if not self.source.exists(path):
                raise StackError(Problem(f"couldn't find env file: {path}", file=path))
            if self.source.is_dir(path):
                raise StackError(Problem(f"{path} is a directory", file=path))
            text = self.read(path)

            def lookup(key: str) -> str | None:
                if key in environment:
                    return environment[key]
                return out.get(key)

            try:
                out.update(parse_dotenv(text, lookup))
            except DotEnvError as exc:
                raise StackError(Problem(f"failed to read {path}: {exc}", file=path)) from exc
        return out


# --- options → config details -------------------------------------------------------------------------


@dataclass
class _Details:
    """The files, working directory, environment and profiles a load works from."""

    files: list[str]
    working_dir: str
    environment: dict[str, str]
    profiles: list[str]


def _discover(ctx: _Context, start: str) -> list[str]:
    directory = start
    while True:
        candidates = [n for n in DEFAULT_FILE_NAMES if ctx.source.exists(posixpath.join(directory, n))]
        if candidates:
            if len(candidates) > 1:
                found = ", ".join(posixpath.join(directory, c) for c in candidates)
                ctx.warn(f"Found multiple config files with supported names: {found}")
                ctx.warn(f"Using {posixpath.join(directory, candidates[0])}")
            files = [posixpath.join(directory, candidates[0])]
            overrides = [n for n in DEFAULT_OVERRIDE_NAMES if ctx.source.exists(posixpath.join(directory, n))]
            if overrides:
                if len(overrides) > 1:
                    found = ", ".join(posixpath.join(directory, c) for c in overrides)
                    ctx.warn(f"Found multiple override files with supported names: {found}")
                    ctx.warn(f"Using {posixpath.join(directory, overrides[0])}")
                files.append(posixpath.join(directory, overrides[0]))
            return files
        parent = posixpath.dirname(directory)
        if parent == directory:
            return []
        directory = parent


def _details(ctx: _Context) -> _Details:
    options = ctx.options
    env: dict[str, str] = dict(options.environ)
    env.setdefault("PWD", options.cwd)
    project_dir = _abs(options.project_directory, options.cwd) if options.project_directory else None
    files = [f if f == "-" else _abs(f, options.cwd) for f in options.files]
    env_files = list(options.env_files)
    if not env_files and env.get("COMPOSE_ENV_FILES"):
        env_files = [f for f in env["COMPOSE_ENV_FILES"].split(",") if f]

    def working_dir() -> str:
        if project_dir:
            return project_dir
        for f in files:
            if f != "-":
                return posixpath.dirname(f)
        return options.cwd

    def load_dotenv() -> None:
        chosen = [_abs(f, options.cwd) for f in env_files]
        if not chosen:
            disable = options.environ.get("COMPOSE_DISABLE_ENV_FILE")
            if disable is not None and _parse_bool(disable):
                return
            default = posixpath.join(working_dir(), ".env")
            if ctx.source.exists(default) and not ctx.source.is_dir(default):
                chosen = [default]
        for key, value in ctx.env_from_files(env, chosen).items():
            env.setdefault(key, value)

    load_dotenv()
    if not files and "COMPOSE_FILE" in env:
        separator = env.get("COMPOSE_PATH_SEPARATOR") or ":"
        files = [_abs(f, options.cwd) for f in env["COMPOSE_FILE"].split(separator)]
    if not files:
        files = _discover(ctx, project_dir or options.cwd)
        if not files:
            raise StackError(
                "no configuration file provided: not found (looked for compose.yaml, compose.yml, "
                "docker-compose.yml, docker-compose.yaml in the working directory and its parents)"
            )
    load_dotenv()
    profiles = list(options.profiles)
    if not profiles:
        profiles = [p.strip() for p in env.get("COMPOSE_PROFILES", "").split(",")]
    if (
        options.project_name is not None
        and normalize_project_name(options.project_name) != options.project_name
    ):
        raise invalid_project_name(options.project_name)
    return _Details(files, working_dir(), env, profiles)


def _project_name(ctx: _Context, details: _Details) -> str:
    options = ctx.options
    env = details.environment
    if options.project_name:
        return options.project_name
    from_env = env.get("COMPOSE_PROJECT_NAME")
    if from_env:
        if normalize_project_name(from_env) != from_env:
            raise invalid_project_name(from_env)
        return from_env
    name = normalize_project_name(posixpath.basename(details.working_dir))
    yaml_name = ""
    for path in details.files:
        try:
            docs = ctx.documents(path)
        except StackError:
            break  # reported again, with its position, when the file is loaded
        for doc in docs:
            if isinstance(doc.value, dict) and isinstance(doc.value.get("name"), str) and doc.value["name"]:
                yaml_name = doc.value["name"]
    if yaml_name and options.interpolate:
        try:
            yaml_name = substitute(yaml_name, lambda k: env.get(k), ctx.warn)
        except Exception as exc:
            raise StackError(Problem(f"error while interpolating name: {exc}", path="name")) from exc
    yaml_name = normalize_project_name(yaml_name)
    return yaml_name or name


# --- per-file loading --------------------------------------------------------------------------------

Processor = Callable[[dict[str, Any]], None]


def _reset_processor(doc: YamlDocument) -> Processor:
    patterns = [tuple(str(p) for p in path) for path in (*doc.reset_paths, *doc.override_paths)]

    def apply(target: dict[str, Any]) -> None:
        def walk(value: Any, path: tuple[str, ...]) -> None:
            if isinstance(value, dict):
                for key in list(value):
                    nxt = (*path, key)
                    if any(
                        len(p) == len(nxt) and all(a == "*" or a == b for a, b in zip(p, nxt, strict=True))
                        for p in patterns
                    ):
                        del value[key]
                        continue
                    walk(value[key], nxt)
            elif isinstance(value, list):
                for item in value:
                    walk(item, (*path, "[]"))

        if patterns:
            walk(target, ())

    return apply


@dataclass
class _Scope:
    """Where a file is being loaded: its project dir (for relative paths) and its environment."""

    working_dir: str
    environment: dict[str, str]
    resolve_paths: bool = True
    skip_extends: bool = False
    skip_include: bool = False
    validate: bool = True
    defaults: bool = True
    resource_dir: str | None = None

    def files_dir(self) -> str:
        """Where files named by ``extends.file`` and ``include`` are looked up."""
        return self.resource_dir or self.working_dir


def _lookup(env: Mapping[str, str]) -> Callable[[str], str | None]:
    return lambda key: env.get(key)


def _load_model(ctx: _Context, files: Sequence[str], scope: _Scope, included: list[str]) -> dict[str, Any]:
    """compose-go's loadYamlModel: all files merged, then defaults, checks, paths, environment."""
    model: dict[str, Any] = {}
    for path in files:
        model, _ = _load_file(ctx, path, scope, model, included)
    if scope.defaults:
        canon.set_defaults(model)
    if scope.validate:
        canon.semantic_checks(model)
    if scope.resolve_paths:
        canon.resolve_paths(model, scope.working_dir, ctx.options.home)
    canon.resolve_environment(model, scope.environment)
    return model


def _load_file(
    ctx: _Context, path: str, scope: _Scope, model: dict[str, Any], included: list[str]
) -> tuple[dict[str, Any], Processor | None]:
    processor: Processor | None = None
    for doc in ctx.documents(path):
        value = doc.value
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise StackError(Problem("top-level object must be a mapping", file=path, line=1, column=1))
        if ctx.options.interpolate:
            value = interpolate_document(value, _lookup(scope.environment), warn=ctx.warn, filename=path)
        reset = _reset_processor(doc)
        if not scope.skip_extends:
            _apply_extends(ctx, value, path, scope, [], [reset])
        reset(model)
        processor = reset
        if not scope.skip_include:
            _apply_include(ctx, value, scope, [*included, path])
        model = merge_documents(model, value)
        model = enforce_unicity(model)
        if scope.validate:
            from orchestrator.stack.schema import validate

            validate(model, filename=path)
            if "version" in model:
                ctx.warn(
                    f"{path}: the attribute `version` is obsolete, it will be ignored, "
                    "please remove it to avoid potential confusion"
                )
                del model["version"]
        model = canon.canonical(model, ignore_parse_errors=not ctx.options.interpolate)
        model = canon.omit_empty(model)
        model = enforce_unicity(model)
    return model, processor


def _apply_extends(
    ctx: _Context,
    document: dict[str, Any],
    path: str,
    scope: _Scope,
    chain: list[tuple[str, str]],
    post: list[Processor],
) -> None:
    services = document.get("services")
    if services is None:
        return
    if not isinstance(services, dict):
        raise StackError(Problem("services must be a mapping", file=path, path="services"))
    for name in list(services):
        _service_extends(ctx, name, services, path, scope, [], post)


def _service_extends(
    ctx: _Context,
    name: str,
    services: dict[str, Any],
    filename: str,
    scope: _Scope,
    chain: list[tuple[str, str]],
    post: list[Processor],
) -> Any:
    service = services.get(name)
    if service is None:
        return None
    if not isinstance(service, dict):
        raise StackError(Problem(f"services.{name} must be a mapping", path=f"services.{name}"))
    extends = service.get("extends")
    if extends is None:
        return service
    ref_file: str | None = None
    if isinstance(extends, dict):
        ref = extends.get("service")
        if not isinstance(ref, str):
            raise StackError(Problem(f"extends.{name}.service is required", path=f"services.{name}.extends"))
        if extends.get("file") is not None:
            ref_file = str(extends["file"])
    elif isinstance(extends, str):
        ref = extends
    else:
        raise StackError(Problem("extends must be a string or a mapping", path=f"services.{name}.extends"))
    base_services = services
    processor: Processor | None = None
    if ref_file is not None:
        local = _abs(ref_file, scope.files_dir())
        base_services, processor = _extends_base_from_file(ctx, name, ref, filename, local, scope)
        filename = local
    elif ref not in services:
        raise StackError(
            Problem(
                f'cannot extend service "{name}" in {filename}: service "{ref}" not found',
                path=f"services.{name}.extends",
            )
        )
    if (filename, name) in chain:
        raise StackError(
            Problem(
                "Circular reference with extends: "
                + " -> ".join(f"{s} in {f}" for f, s in [*chain, (filename, name)]),
                path=f"services.{name}.extends",
            )
        )
    base = _service_extends(
        ctx, ref, base_services, filename, scope, [*chain, (filename, name)], [processor] if processor else []
    )
    if base is None:
        return service
    source = copy.deepcopy(base)
    for apply in post:
        apply({"services": {name: source}})
    merged = extend_service(source, service)
    merged.pop("extends", None)
    services[name] = merged
    return merged


def _extends_base_from_file(
    ctx: _Context, name: str, ref: str, path: str, local: str, scope: _Scope
) -> tuple[dict[str, Any], Processor | None]:
    base_dir = posixpath.dirname(local)
    inner = _Scope(
        working_dir=base_dir,
        environment=scope.environment,
        resolve_paths=False,
        skip_extends=True,
        skip_include=True,
        validate=False,
        defaults=False,
    )
    if not ctx.source.exists(local):
        raise StackError(Problem(f"open {local}: no such file or directory", path=f"services.{name}.extends"))
    source, processor = _load_file(ctx, local, inner, {}, [])
    services = source.get("services")
    if services is None:
        raise StackError(Problem(f'cannot extend service "{name}" in {local}: no services section'))
    if not isinstance(services, dict):
        raise StackError(Problem(f'cannot extend service "{name}" in {local}: services must be a mapping'))
    if ref not in services:
        raise StackError(
            Problem(
                f'cannot extend service "{name}" in {path}: service "{ref}" not found in {local}',
                path=f"services.{name}.extends",
            )
        )
    canon.resolve_paths(source, base_dir, ctx.options.home)
    return services, processor


def _apply_include(ctx: _Context, document: dict[str, Any], scope: _Scope, included: list[str]) -> None:
    entries = document.get("include")
    if entries is None:
        return
    if not isinstance(entries, list):
        raise StackError(Problem(f"`include` must be a list, got {entries}", path="include"))
    for index, entry in enumerate(entries):
        where = f"include[{index}]"
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict):
            raise StackError(Problem("include entries must be strings or mappings", path=where))
        raw_paths = entry.get("path")
        paths = [raw_paths] if isinstance(raw_paths, str) else list(raw_paths or [])
        project_directory = entry.get("project_directory") or ""
        env_files_raw = entry.get("env_file")
        env_files = [env_files_raw] if isinstance(env_files_raw, str) else list(env_files_raw or [])
        resolved: list[str] = []
        explicit_directory = False
        for i, p in enumerate(paths):
            p = _abs(str(p), scope.files_dir())
            if i == 0:
                if not project_directory:
                    project_directory = posixpath.dirname(p)
                elif not str(project_directory).startswith("/"):
                    project_directory = _abs(str(project_directory), scope.working_dir)
                    explicit_directory = True
                if p in included:
                    chain = "\n include ".join([*included[1:], p])
                    raise StackError(
                        Problem(f"include cycle detected:\n{included[0]}\n include {chain}", path=where)
                    )
            resolved.append(p)
        if not env_files:
            candidate = posixpath.join(project_directory, ".env")
            if ctx.source.exists(candidate) and not ctx.source.is_dir(candidate):
                env_files = [candidate]
        else:
            checked = []
            for f in env_files:
                f = str(f)
                if not f.startswith("/"):
                    f = _abs(f, scope.working_dir)
                    if not ctx.source.exists(f):
                        raise StackError(Problem(f"stat {f}: no such file or directory", path=where))
                    if ctx.source.is_dir(f):
                        raise StackError(Problem(f"{f} is not a file", path=where))
                checked.append(f)
            env_files = checked
        from_files = ctx.env_from_files(scope.environment, env_files)
        environment = dict(scope.environment)
        for k, v in from_files.items():
            environment.setdefault(k, v)
        # compose-go resolves the included file's relative paths against the project directory
        # when it exists, otherwise against its parent (ResourceLoader.Dir); files named by
        # extends/include inside it are still looked up from the project directory itself
        paths_dir = project_directory
        if explicit_directory and not ctx.source.is_dir(project_directory):
            paths_dir = posixpath.dirname(project_directory)
        inner = _Scope(working_dir=paths_dir, environment=environment, resource_dir=project_directory)
        for p in resolved:
            if not ctx.source.exists(p):
                raise StackError(Problem(f"open {p}: no such file or directory", path=where))
        imported = _load_model(ctx, resolved, inner, included)
        for key in ("services", "volumes", "networks", "secrets", "configs", "models"):
            source = imported.get(key)
            if source is None:
                continue
            target = document.get(key)
            if not isinstance(target, dict):
                target = {}
            for name, value in source.items():
                if name in target:
                    if target[name] == value:
                        continue
                    raise StackError(
                        Problem(f"{key}.{name} conflicts with imported resource", path=f"{key}.{name}")
                    )
                target[name] = value
            document[key] = target
    document.pop("include", None)


# --- the project ---------------------------------------------------------------------------------------


def load(options: LoadOptions, source: FileSource) -> Project:
    """Load a Compose project exactly as ``docker compose config`` would see it."""
    ctx = _Context(source, options)
    try:
        return _load(ctx)
    except StackError as exc:
        located = ctx.locate(exc)
        located.warnings = list(ctx.warnings)  # type: ignore[attr-defined]
        raise located from exc.__cause__
    except UsageError as exc:
        exc.warnings = list(ctx.warnings)  # type: ignore[attr-defined]
        raise


def _load(ctx: _Context) -> Project:
    details = _details(ctx)
    name = _project_name(ctx, details)
    details.environment["COMPOSE_PROJECT_NAME"] = name
    # Compose's uninterpolated model (config --no-interpolate) is built with no environment at all
    environment = details.environment if ctx.options.interpolate else {}
    scope = _Scope(working_dir=details.working_dir, environment=environment)
    for f in details.files:
        if f == "-":
            raise StackError("reading the Compose file from stdin is not supported")
    model = _load_model(ctx, details.files, scope, [])
    if not model:
        raise StackError(Problem("empty compose file", file=details.files[0]))
    model["name"] = name
    canon.normalize(model, name, environment)
    if not ctx.options.interpolate:
        # --no-interpolate: Compose prints the untyped model (values may still hold ${...})
        return Project(
            name=name,
            working_dir=details.working_dir,
            files=list(details.files),
            environment=details.environment,
            document={},
            warnings=ctx.warnings,
            profiles=details.profiles,
            disabled_services={},
            records={"services": {}, "volumes": {}, "networks": {}, "secrets": {}, "configs": {}},
            model=model,
            _locator=ctx,
        )
    records, disabled = _bind_records(model, details.profiles)
    _check_consistency(records, disabled)
    if ctx.options.resolve_env_files:
        _resolve_service_environment(ctx, records, details.environment)
    _resolve_labels(ctx, records)
    if ctx.options.services:
        _select_services(records, list(ctx.options.services))
    _drop_unused_resources(records)
    _check_container_names(records)
    project = Project(
        name=name,
        working_dir=details.working_dir,
        files=list(details.files),
        environment=details.environment,
        document={},
        warnings=ctx.warnings,
        profiles=details.profiles,
        disabled_services=disabled,
        records=records,
        _locator=ctx,
    )
    project.document = render.plain_json(encode_project(records, yaml_mode=False))
    from orchestrator.stack.confighash import service_config_hash

    project.config_hashes = {
        n: service_config_hash(records["services"][n]) for n in sorted(records["services"])
    }
    return project


# --- records (compose-go's typed project) ---------------------------------------------------------------

_USER_DEFINED = {("services",), ("volumes",), ("networks",), ("secrets",), ("configs",)}


def _bind_records(model: dict[str, Any], profiles: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    extensions = {k: _sorted_maps(v) for k, v in model.items() if k.startswith("x-")}
    records: dict[str, Any] = {"name": model["name"], "extensions": extensions}
    services = model.get("services") or {}
    if not isinstance(services, dict):
        raise StackError(Problem("services must be a mapping", path="services"))
    decoded: dict[str, Any] = {}
    for name, service in services.items():
        decoded[name] = render.decode(service if service is not None else {}, "Service", f"services.{name}")
    records["networks"] = {
        k: render.decode(v, "Network", f"networks.{k}") for k, v in (model.get("networks") or {}).items()
    }
    records["volumes"] = {
        k: render.decode(v, "VolumeTop", f"volumes.{k}") for k, v in (model.get("volumes") or {}).items()
    }
    secrets: dict[str, Any] = {}
    for k, v in (model.get("secrets") or {}).items():
        # the value of `environment:` travels as x-#value and becomes the (unprinted) content
        value = dict(v) if isinstance(v, dict) else v
        content = value.pop("x-#value", None) if isinstance(value, dict) else None
        secrets[k] = render.decode(value, "FileObject", f"secrets.{k}")
        if content is not None:
            secrets[k]["content"] = content
    records["secrets"] = secrets
    records["configs"] = {
        k: render.decode(v, "FileObject", f"configs.{k}") for k, v in (model.get("configs") or {}).items()
    }
    records["models"] = dict(model.get("models") or {})
    enabled: dict[str, Any] = {}
    disabled: dict[str, Any] = {}
    for name, service in decoded.items():
        service_profiles = service.get("profiles") or []
        if not service_profiles or "*" in profiles or any(p in profiles for p in service_profiles):
            enabled[name] = service
        else:
            disabled[name] = service
    records["services"] = enabled
    return records, disabled


def _sorted_maps(value: Any) -> Any:
    """Untyped values print like Go's ``map[string]any``: keys sorted at every level."""
    if isinstance(value, dict):
        return {k: _sorted_maps(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_maps(v) for v in value]
    if isinstance(value, YamlTimestamp):
        return GoTime(value.go_text())
    return value


def _fail(message: str, path: str | None = None) -> StackError:
    return StackError(Problem(message, path=path))


def _check_consistency(records: dict[str, Any], disabled: dict[str, Any]) -> None:
    services = records["services"]
    for name, s in services.items():
        where = f"services.{name}"
        build = s.get("build")
        if build is None and not s.get("image") and s.get("provider") is None:
            raise _fail(
                f'service "{name}" has neither an image nor a build context specified: invalid compose project',
                where,
            )
        if build is not None:
            if build.get("dockerfile_inline") and build.get("dockerfile"):
                raise _fail(
                    f'service "{name}" declares mutualy exclusive dockerfile and dockerfile_inline: invalid compose project',
                    where,
                )
            for key, context in (build.get("additional_contexts") or {}).items():
                if context.startswith("service:"):
                    target = context[len("service:") :]
                    if target not in services:
                        raise _fail(
                            f'service "{name}" declares unknown service "{target}" as additional contexts {key}',
                            where,
                        )
                    if services[target].get("build") is None:
                        raise _fail(
                            f'service "{name}" declares non-buildable service "{target}" as additional contexts {key}',
                            where,
                        )
            platforms = build.get("platforms") or []
            if platforms and s.get("platform") and s["platform"] not in platforms:
                raise _fail(
                    f'service.build.platforms MUST include service.platform "{s["platform"]}": invalid compose project',
                    where,
                )
        if s.get("network_mode") and s.get("networks"):
            raise _fail(
                f"service {name} declares mutually exclusive `network_mode` and `networks`: invalid compose project",
                where,
            )
        for network in s.get("networks") or {}:
            if network not in records["networks"]:
                raise _fail(
                    f'service "{name}" refers to undefined network {network}: invalid compose project',
                    f"{where}.networks.{network}",
                )
        test = (s.get("healthcheck") or {}).get("test")
        if test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise _fail(
                'healthcheck.test must start either by "CMD", "CMD-SHELL" or "NONE"',
                f"{where}.healthcheck.test",
            )
        for dep, cfg in (s.get("depends_on") or {}).items():
            if dep not in services:
                if dep in disabled and not cfg.get("required"):
                    continue
                raise _fail(
                    f'service "{name}" depends on undefined service "{dep}": invalid compose project',
                    f"{where}.depends_on.{dep}",
                )
        mode = s.get("network_mode") or ""
        if mode.startswith("service:") and mode[len("service:") :] not in services:
            target = mode[len("service:") :]
            raise _fail(
                f"service \"{target}\" not found for network_mode 'service:{target}'", f"{where}.network_mode"
            )
        for i, volume in enumerate(s.get("volumes") or []):
            if (
                volume.get("type") == "volume"
                and volume.get("source")
                and volume["source"] not in records["volumes"]
            ):
                raise _fail(
                    f'service "{name}" refers to undefined volume {volume["source"]}: invalid compose project',
                    f"{where}.volumes[{i}]",
                )
        for secret in (build or {}).get("secrets") or []:
            if secret.get("source") not in records["secrets"]:
                raise _fail(
                    f'service "{name}" refers to undefined build secret {secret.get("source")}: invalid compose project',
                    where,
                )
        for kind in ("configs", "secrets"):
            for item in s.get(kind) or []:
                if item.get("source") not in records[kind]:
                    raise _fail(
                        f'service "{name}" refers to undefined {kind[:-1]} {item.get("source")}: invalid compose project',
                        f"{where}.{kind}",
                    )
        for model_name in s.get("models") or {}:
            if model_name not in records["models"]:
                raise _fail(
                    f'service "{name}" refers to undefined model {model_name}: invalid compose project',
                    f"{where}.models",
                )
        deploy = s.get("deploy")
        scale = s.get("scale")
        if scale is not None and deploy is not None:
            if deploy.get("replicas") is not None and deploy["replicas"] != scale:
                raise _fail(
                    f"services.{name}: can't set distinct values on 'scale' and 'deploy.replicas': invalid compose project",
                    where,
                )
            deploy["replicas"] = scale
        if scale is not None and scale < 0:
            raise _fail(f"services.{name}.scale: must be greater than or equal to 0", where)
        if deploy is not None and deploy.get("replicas") is not None and deploy["replicas"] < 0:
            raise _fail(f"services.{name}.deploy.replicas: must be greater than or equal to 0", where)
        resources = (deploy or {}).get("resources") or {}
        for key, part, twin in _DEPLOY_TWINS:
            section = resources.get(part)
            if not s.get(key) or deploy is None or section is None:
                continue
            same = (
                float(section.get(twin) or 0) == float(s[key])
                if key == "cpus"
                else (section.get(twin) or 0) == s[key]
            )
            if not same:
                raise _fail(
                    f"services.{name}: can't set distinct values on '{key}' and 'deploy.resources.{part}.{twin}': invalid compose project",
                    where,
                )
        effective_scale = scale if scale is not None else (deploy or {}).get("replicas") or 1
        if effective_scale > 1 and s.get("container_name"):
            attr = "scale" if scale is not None else "deploy.replicas"
            raise _fail(
                f"services.{attr}: can't set container_name and {name} as container name must be unique: invalid compose project",
                where,
            )
        for watch in ((s.get("develop") or {}).get("watch")) or []:
            if not watch.get("target") and watch.get("action") not in ("rebuild", "restart"):
                raise _fail(
                    f"services.{name}.develop.watch: target is required for non-rebuild actions: invalid compose project",
                    where,
                )
        mounts: dict[str, str] = {}
        for i, tmpfs in enumerate(s.get("tmpfs") or []):
            loc = f"services.{name}.tmpfs[{i}]"
            target = tmpfs.split(":", 1)[0]
            if target in mounts:
                raise _fail(f"{loc}: target {target} already mounted as {mounts[target]}", loc)
            mounts[target] = loc
        for i, volume in enumerate(s.get("volumes") or []):
            loc = f"services.{name}.volumes[{i}]"
            target = volume.get("target", "")
            if target in mounts:
                raise _fail(f"{loc}: target {target} already mounted as {mounts[target]}", loc)
            mounts[target] = loc
    for name, secret in records["secrets"].items():
        if secret.get("external"):
            continue
        if not secret.get("file") and not secret.get("environment"):
            raise _fail(
                f'secret "{name}" must declare either `file` or `environment`: invalid compose project',
                f"secrets.{name}",
            )


def _resolve_service_environment(
    ctx: _Context, records: dict[str, Any], environment: Mapping[str, str]
) -> None:
    """``env_file`` contents folded into ``environment`` (explicit entries win), files dropped."""
    for service in records["services"].values():
        explicit: dict[str, str | None] = dict(service.get("environment") or {})
        for key, value in explicit.items():
            if value is None and key in environment:
                explicit[key] = environment[key]
        resolved: dict[str, str | None] = {k: v for k, v in explicit.items() if v is not None}
        for env_file in service.get("env_file") or []:
            path = env_file.get("path", "")
            if not ctx.source.exists(path):
                if env_file.get("required", True):
                    raise StackError(
                        Problem(f"env file {path} not found: stat {path}: no such file or directory")
                    )
                continue

            def lookup(key: str, explicit: dict[str, str | None] = explicit) -> str | None:
                if key in environment:
                    return environment[key]
                return explicit.get(key)

            text = ctx.read(path)
            try:
                resolved.update(parse_dotenv(text, lookup))
            except DotEnvError as exc:
                raise StackError(Problem(f"failed to read {path}: {exc}", file=path)) from exc
        resolved.update(explicit)
        if resolved or "environment" in service:
            service["environment"] = resolved
        service.pop("env_file", None)


def _resolve_labels(ctx: _Context, records: dict[str, Any]) -> None:
    for service in records["services"].values():
        files = service.pop("label_file", None) or []
        if not files:
            continue
        labels: dict[str, str] = {}
        for path in files:
            text = ctx.read(path)
            try:
                labels.update(parse_dotenv(text, labels.get))
            except DotEnvError as exc:
                raise StackError(Problem(f"failed to read {path}: {exc}", file=path)) from exc
        labels.update(service.get("labels") or {})
        if labels:
            service["labels"] = labels


def _drop_unused_resources(records: dict[str, Any]) -> None:
    networks: set[str] = set()
    volumes: set[str] = set()
    secrets: set[str] = set()
    configs: set[str] = set()
    for s in records["services"].values():
        networks.update((s.get("networks") or {}).keys())
        for v in s.get("volumes") or []:
            if v.get("type") == "volume" and v.get("source"):
                volumes.add(v["source"])
        secrets.update(x.get("source") for x in s.get("secrets") or [])
        secrets.update(x.get("source") for x in (s.get("build") or {}).get("secrets") or [])
        configs.update(x.get("source") for x in s.get("configs") or [])
    for key, used in (
        ("networks", networks),
        ("volumes", volumes),
        ("secrets", secrets),
        ("configs", configs),
    ):
        records[key] = {k: v for k, v in records[key].items() if k in used}


def _select_services(records: dict[str, Any], names: list[str]) -> None:
    """``config web``: the named services and what they depend on, nothing else."""
    services = records["services"]
    selected: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in selected:
            continue
        if name not in services:
            raise UsageError(f"no such service: {name}")
        selected.add(name)
        pending.extend((services[name].get("depends_on") or {}).keys())
    for name in list(services):
        if name not in selected:
            del services[name]
            continue
        depends_on = services[name].get("depends_on")
        if depends_on:
            services[name]["depends_on"] = {d: v for d, v in depends_on.items() if d in selected}


def _check_container_names(records: dict[str, Any]) -> None:
    seen: dict[str, str] = {}
    for name in sorted(records["services"]):
        container = records["services"][name].get("container_name")
        if not container:
            continue
        if container in seen:
            raise _fail(
                f'services.{name}: container name "{container}" is already in use by service {seen[container]}"',
                f"services.{name}.container_name",
            )
        seen[container] = name


def encode_project(records: dict[str, Any], *, yaml_mode: bool) -> dict[str, Any]:
    """The printed document: Go's Project marshalling (JSON: a sorted map; YAML: struct order)."""
    order = render.yaml_sorted if yaml_mode else sorted
    services = {
        n: render.encode(records["services"][n], "Service", yaml_mode) for n in order(records["services"])
    }
    parts: dict[str, Any] = {"name": records["name"], "services": services}
    for key, typ in (
        ("networks", "Network"),
        ("volumes", "VolumeTop"),
        ("secrets", "FileObject"),
        ("configs", "FileObject"),
    ):
        if records[key]:
            parts[key] = {
                k: _encode_resource(records[key][k], typ, key, yaml_mode) for k in order(records[key])
            }
    if yaml_mode:
        ordered: dict[str, Any] = {
            k: parts[k]
            for k in ("name", "services", "networks", "volumes", "secrets", "configs")
            if k in parts
        }
        for k in render.yaml_sorted(records["extensions"]):
            ordered[k] = render.yaml_sort_maps(records["extensions"][k])
        return ordered
    for k, v in records["extensions"].items():
        parts[k] = v
    return {k: parts[k] for k in sorted(parts)}


def _encode_resource(value: dict[str, Any], typ: str, kind: str, yaml_mode: bool) -> Any:
    value = dict(value)
    if kind == "secrets":
        value.pop("content", None)
    if kind == "configs" and value.get("environment"):
        value.pop("content", None)
    return render.encode(value, typ, yaml_mode)
