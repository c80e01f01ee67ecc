"""PURE. From merged Compose dicts to the canonical long form.

Owns the transformations Compose applies after merging: short syntax to long syntax (ports,
volumes, devices, depends_on, env_file, build, extends, secrets/configs mounts, networks lists,
ulimits, gpus), defaults (port protocol/mode, build context, secret targets, device counts),
the semantic checks that run before path resolution (mutually exclusive file/environment/content,
host IPs), relative path resolution against the project directory, and normalisation (implicit
``default`` network, resource names ``<project>_<key>``, links/network_mode/volumes_from implying
``depends_on``, build ``Dockerfile`` default). Called by :mod:`orchestrator.stack.loader`.
"""

from __future__ import annotations

import ipaddress
import posixpath
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from orchestrator.errors import Problem, StackError
from orchestrator.stack.formats import FormatError, parse_device, parse_port, parse_volume

PathT = tuple[str, ...]
_LENIENT: ContextVar[bool] = ContextVar("orc_canonical_lenient", default=False)


def _dotted(path: PathT) -> str:
    out = ""
    for p in path:
        out += p if p == "[]" else (f".{p}" if out else p)
    return out


def _fail(path: PathT, message: str) -> StackError:
    return StackError(Problem(message, path=_dotted(path) or None))


# --- canonical transform ----------------------------------------------------------------------------

Transformer = Callable[[Any, PathT], Any]


# A table's patterns by their length, in the table's order (only a pattern of a path's length
# can match it): every node of a document was tried against every pattern, ~12 per node (a
# load of the 30-service benchmark stack: 12.4 -> 11.3 ms).
_Index = dict[int, list[tuple[PathT, Transformer]]]


def _walk(data: Any, path: PathT, table: list[tuple[PathT, Transformer]]) -> Any:
    """``data`` with the first pattern of ``table`` that matches a node's path (``*`` matches any
    key) applied to that node, in place of descending into it."""
    index: _Index = {}
    for pattern, fn in table:
        index.setdefault(len(pattern), []).append((pattern, fn))
    return _walk_indexed(data, path, index)


def _walk_indexed(data: Any, path: PathT, index: _Index) -> Any:
    for pattern, fn in index.get(len(path), ()):
        if all(p == "*" or p == q for p, q in zip(pattern, path, strict=True)):
            return fn(data, path)
    if isinstance(data, dict):
        for k in list(data):
            data[k] = _walk_indexed(data[k], (*path, k), index)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            data[i] = _walk_indexed(item, (*path, "[]"), index)
    return data


def _mapping_walk(table: list[tuple[PathT, Transformer]]) -> Transformer:
    def walk(data: Any, path: PathT) -> Any:
        if isinstance(data, dict):
            for k in list(data):
                data[k] = _walk(data[k], (*path, k), table)
        return data

    return walk


def _string_or_list(data: Any, _path: PathT) -> Any:
    return [data] if isinstance(data, str) else data


def _file_mount(data: Any, path: PathT) -> Any:
    if isinstance(data, dict):
        return data
    if isinstance(data, str):
        return {"source": data}
    raise _fail(path, f"{_dotted(path)}: unsupported type {type(data).__name__}")


def _string_or_x(data: Any, _path: PathT) -> Any:
    if isinstance(data, str):
        return data
    return "true" if data is True else "false" if data is False else str(data)


def _key_value(data: Any, path: PathT) -> Any:
    if isinstance(data, dict):
        return data
    if isinstance(data, list):
        out: dict[str, Any] = {}
        for e in data:
            before, sep, after = str(e).partition("=")
            if not sep:
                if _LENIENT.get():
                    return data
                raise _fail(path, f"{_dotted(path)}: invalid value {e}, expected key=value")
            out[before] = after
        return out
    raise _fail(path, f"{_dotted(path)}: invalid type {type(data).__name__}")


def _depends_on(data: Any, path: PathT) -> Any:
    if isinstance(data, dict):
        for name, e in data.items():
            if not isinstance(e, dict):
                raise _fail(path, f"{_dotted(path)}.{name}: unsupported value {e}")
            e.setdefault("condition", "service_started")
            e.setdefault("required", True)
        return data
    if isinstance(data, list):
        return {str(k): {"condition": "service_started", "required": True} for k in data}
    raise _fail(path, f"{_dotted(path)}: invalid type {type(data).__name__} for depend_on")


def _env_file(data: Any, path: PathT) -> Any:
    def one(v: Any) -> Any:
        if isinstance(v, str):
            return {"path": v, "required": True}
        if isinstance(v, dict):
            v.setdefault("required", True)
            return v
        return None

    if isinstance(data, str):
        return [one(data)]
    if isinstance(data, list):
        return [one(v) for v in data]
    raise _fail(path, f"{_dotted(path)}: invalid type {type(data).__name__} for env_file")


def _extends(data: Any, path: PathT) -> Any:
    if isinstance(data, dict):
        return data
    if isinstance(data, str):
        return {"service": data}
    raise _fail(path, f"{_dotted(path)}: invalid type {type(data).__name__} for extends")


def _gpus(data: Any, path: PathT) -> Any:
    if isinstance(data, list):
        return data
    if isinstance(data, str):
        return [{"count": "all"}]
    raise _fail(path, f"{_dotted(path)}: invalid type {type(data).__name__} for gpus")


def _slice_to_map(data: Any, _path: PathT) -> Any:
    if isinstance(data, list):
        return {str(n): None for n in data}
    return data


def _volume_mount(data: Any, path: PathT) -> Any:
    if isinstance(data, dict):
        return data
    if isinstance(data, str):
        try:
            volume = parse_volume(data)
        except FormatError as exc:
            if _LENIENT.get():
                return data
            raise _fail(path, str(exc)) from exc
        if volume.get("target"):
            volume["target"] = posixpath.normpath(volume["target"])
            if volume["target"].startswith("//"):
                volume["target"] = "/" + volume["target"].lstrip("/")
        return volume
    raise _fail(path, f"{_dotted(path)}: invalid type {type(data).__name__} for service volume mount")


def _device(data: Any, path: PathT) -> Any:
    if isinstance(data, dict):
        return data
    if isinstance(data, str):
        try:
            return parse_device(data)
        except FormatError as exc:
            raise _fail(path, str(exc)) from exc
    raise _fail(path, f"{_dotted(path)}: invalid type {type(data).__name__} for service volume mount")


def _ports(data: Any, path: PathT) -> Any:
    if not isinstance(data, list):
        raise _fail(path, f"{_dotted(path)}: invalid type {type(data).__name__} for port")
    ports: list[Any] = []
    for i, entry in enumerate(data):
        if isinstance(entry, bool):
            raise _fail(path, f"{_dotted(path)}: invalid type bool for port")
        if isinstance(entry, (int, str)):
            try:
                ports.extend(parse_port(str(entry)))
            except FormatError as exc:
                if _LENIENT.get() and isinstance(entry, str):
                    return data  # uninterpolated ${...}: compose-go keeps the whole list as written
                raise StackError(Problem(str(exc), path=f"{_dotted(path)}[{i}]")) from exc
        elif isinstance(entry, dict):
            ports.append(entry)
        else:
            raise _fail(path, f"{_dotted(path)}: invalid type {type(entry).__name__} for port")
    return ports


def _build(data: Any, path: PathT) -> Any:
    if isinstance(data, dict):
        return _mapping_walk(_CANONICAL)(data, path)
    if isinstance(data, str):
        return {"context": data}
    raise _fail(path, f"{_dotted(path)}: invalid type {type(data).__name__} for build")


def _ssh(data: Any, path: PathT) -> Any:
    if isinstance(data, dict):
        return data
    if isinstance(data, list):
        out: dict[str, Any] = {}
        for e in data:
            if not isinstance(e, str):
                raise _fail(path, f"invalid ssh key type {type(e).__name__}")
            key, sep, value = e.partition("=")
            if not sep:
                if key != "default":
                    raise _fail(path, f"invalid ssh key {e!r}")
                out[key] = None
                continue
            out[key] = value
        return out
    raise _fail(path, f"{_dotted(path)}: invalid type {type(data).__name__} for ssh")


def _ulimits(data: Any, path: PathT) -> Any:
    if isinstance(data, (dict, int)) and not isinstance(data, bool):
        return data
    raise _fail(path, f"{_dotted(path)}: invalid type {type(data).__name__} for ulimits")


def _maybe_external(data: Any, path: PathT) -> Any:
    if data is None:
        return None
    if not isinstance(data, dict):
        return data
    resource = _mapping_walk(_CANONICAL)(data, path)
    if "external" in resource and isinstance(resource["external"], dict):
        external = resource["external"]
        resource["external"] = True
        if "name" in external:
            if "name" in resource and resource["name"] != external["name"]:
                raise _fail(path, f"{_dotted(path)}: name and external.name conflict; only use name")
            resource.setdefault("name", external["name"])
    return resource


def _include(data: Any, path: PathT) -> Any:
    if isinstance(data, dict):
        return data
    if isinstance(data, str):
        return {"path": data}
    raise _fail(path, f"{_dotted(path)}: invalid type {type(data).__name__} for include")


_S = ("services", "*")
_CANONICAL: list[tuple[PathT, Transformer]] = []
_CANONICAL.extend(
    [
        ((*_S, "build", "secrets", "*"), _file_mount),
        ((*_S, "build", "provenance"), _string_or_x),
        ((*_S, "build", "sbom"), _string_or_x),
        ((*_S, "build", "additional_contexts"), _key_value),
        ((*_S, "depends_on"), _depends_on),
        ((*_S, "env_file"), _env_file),
        ((*_S, "label_file"), _string_or_list),
        ((*_S, "extends"), _extends),
        ((*_S, "gpus"), _gpus),
        ((*_S, "networks"), _slice_to_map),
        ((*_S, "models"), _slice_to_map),
        ((*_S, "volumes", "*"), _volume_mount),
        ((*_S, "dns"), _string_or_list),
        ((*_S, "devices", "*"), _device),
        ((*_S, "secrets", "*"), _file_mount),
        ((*_S, "configs", "*"), _file_mount),
        ((*_S, "ports"), _ports),
        ((*_S, "build"), _build),
        ((*_S, "build", "ssh"), _ssh),
        ((*_S, "ulimits", "*"), _ulimits),
        ((*_S, "build", "ulimits", "*"), _ulimits),
        ((*_S, "develop", "watch", "*", "ignore"), _string_or_list),
        ((*_S, "develop", "watch", "*", "include"), _string_or_list),
        (("volumes", "*"), _maybe_external),
        (("networks", "*"), _maybe_external),
        (("secrets", "*"), _maybe_external),
        (("configs", "*"), _maybe_external),
        (("include", "*"), _include),
    ]
)
# "services.*" itself: walk its mapping with the table (non-mappings pass through)
_CANONICAL.append((_S, _mapping_walk(_CANONICAL)))


def canonical(document: dict[str, Any], *, ignore_parse_errors: bool = False) -> dict[str, Any]:
    """Short syntax → long syntax, in place. Without interpolation (``--no-interpolate``), strings
    that do not parse (``${PORT}:80``) are kept as written, as compose-go does."""
    token = _LENIENT.set(ignore_parse_errors)
    try:
        return _walk(document, (), _CANONICAL)
    finally:
        _LENIENT.reset(token)


def omit_empty(document: dict[str, Any]) -> dict[str, Any]:
    """Drop null/empty entries of ``services.*.dns`` (compose-go's OmitEmpty)."""
    services = document.get("services")
    if isinstance(services, dict):
        for service in services.values():
            if isinstance(service, dict) and isinstance(service.get("dns"), list):
                service["dns"] = [d for d in service["dns"] if d not in (None, "")]
    return document


# --- defaults ----------------------------------------------------------------------------------------


def _default_build_context(data: Any, _path: PathT) -> Any:
    if isinstance(data, dict):
        data.setdefault("context", ".")
    return data


def _default_secret_mount(data: Any, path: PathT) -> Any:
    if not isinstance(data, dict):
        raise _fail(path, f"{_dotted(path)}: unsupported type {type(data).__name__}")
    data.setdefault("target", f"/run/secrets/{data.get('source')}")
    return data


def _port_defaults(data: Any, _path: PathT) -> Any:
    if isinstance(data, dict):
        data.setdefault("protocol", "tcp")
        data.setdefault("mode", "ingress")
    return data


def _device_request_defaults(data: Any, path: PathT) -> Any:
    if not isinstance(data, dict):
        raise _fail(path, f"{_dotted(path)}: invalid type for device request")
    if "count" not in data and "device_ids" not in data:
        data["count"] = "all"
    return data


_DEFAULTS: list[tuple[PathT, Transformer]] = [
    ((*_S, "build"), _default_build_context),
    ((*_S, "secrets", "*"), _default_secret_mount),
    ((*_S, "ports", "*"), _port_defaults),
    ((*_S, "deploy", "resources", "reservations", "devices", "*"), _device_request_defaults),
    ((*_S, "gpus", "*"), _device_request_defaults),
]


def set_defaults(document: dict[str, Any]) -> dict[str, Any]:
    return _walk(document, (), _DEFAULTS)


# --- semantic checks (compose-go's validation package) ----------------------------------------------


def _check_file_object(*keys: str) -> Transformer:
    def check(value: Any, path: PathT) -> Any:
        if not isinstance(value, dict):
            return value
        count = sum(1 for k in keys if k in value)
        if count > 1:
            raise _fail(path, f"{_dotted(path)}: {'|'.join(keys)} attributes are mutually exclusive")
        if count == 0 and "driver" not in value and "external" not in value:
            raise _fail(path, f"{_dotted(path)}: one of {'|'.join(keys)} must be set")
        return value

    return check


def _check_volume(value: Any, path: PathT) -> Any:
    if value is None:
        return value
    if not isinstance(value, dict):
        raise _fail(path, f"expected volume, got {value}")
    if value.get("external") is True:
        for k in value:
            if k not in ("name", "external") and not k.startswith("x-"):
                raise _fail(path, f'{_dotted(path)}: conflicting parameters "external" and "{k}" specified')
    return value


def _check_ip(value: Any, path: PathT) -> Any:
    if isinstance(value, dict) and "host_ip" in value:
        try:
            ipaddress.ip_address(str(value["host_ip"]))
        except ValueError:
            raise _fail(path, f"{_dotted(path)}: invalid ip address: {value['host_ip']}") from None
    return value


def _check_watch_path(value: Any, path: PathT) -> Any:
    if value == "":
        raise _fail(path, f"{_dotted(path)}: value can't be blank")
    return value


def _check_device_request(value: Any, path: PathT) -> Any:
    if isinstance(value, dict) and "count" in value and "device_ids" in value:
        raise _fail(path, f'{_dotted(path)}: "count" and "device_ids" attributes are exclusive')
    return value


_CHECKS: list[tuple[PathT, Transformer]] = [
    (("volumes", "*"), _check_volume),
    (("configs", "*"), _check_file_object("file", "environment", "content")),
    (("secrets", "*"), _check_file_object("file", "environment")),
    ((*_S, "ports", "*"), _check_ip),
    ((*_S, "develop", "watch", "*", "path"), _check_watch_path),
    ((*_S, "deploy", "resources", "reservations", "devices", "*"), _check_device_request),
    ((*_S, "gpus", "*"), _check_device_request),
]


def semantic_checks(document: dict[str, Any]) -> None:
    _walk(document, (), _CHECKS)


# --- relative paths ----------------------------------------------------------------------------------


def expand_user(path: str, home: str | None) -> str:
    if home and (path == "~" or path.startswith("~/")):
        return home + path[1:]
    return path


def resolve_paths(document: dict[str, Any], base: str, home: str | None) -> dict[str, Any]:
    """Make file paths absolute against ``base`` (the project or included/extended file's dir)."""

    def abs_path(value: Any, _path: PathT) -> Any:
        if isinstance(value, list):
            return [abs_path(v, _path) for v in value]
        if isinstance(value, str):
            v = expand_user(value, home)
            if v.startswith("/") or v == "":
                return v
            return posixpath.normpath(posixpath.join(base, v))
        return value

    def context_path(value: Any, path: PathT) -> Any:
        if not isinstance(value, str):
            return value
        if "://" in value or value.startswith("service:"):
            return value
        if value.startswith(("https://", "http://", "git://", "ssh://", "github.com/", "git@")):
            return value
        return abs_path(value, path)

    def maybe_unix(value: Any, path: PathT) -> Any:
        if not isinstance(value, str):
            return value
        v = expand_user(value, home)
        if v.startswith("/") or (len(v) > 2 and v[1] == ":" and v[2] in "\\/"):
            return v
        return posixpath.normpath(posixpath.join(base, v))

    def volume_mount(value: Any, path: PathT) -> Any:
        if isinstance(value, dict) and value.get("type") == "bind":
            if "source" not in value:
                raise _fail(path, 'invalid mount config for type "bind": field Source must not be empty')
            value["source"] = maybe_unix(value["source"], path)
        return value

    def volume_driver_opts(value: Any, path: PathT) -> Any:
        if isinstance(value, dict) and value.get("driver") == "local":
            opts = value.get("driver_opts")
            if isinstance(opts, dict) and opts.get("o") == "bind" and "device" in opts:
                opts["device"] = maybe_unix(opts["device"], path)
        return value

    table: list[tuple[PathT, Transformer]] = [
        ((*_S, "build", "context"), context_path),
        ((*_S, "build", "additional_contexts", "*"), context_path),
        ((*_S, "build", "ssh", "*"), maybe_unix),
        ((*_S, "env_file", "*", "path"), abs_path),
        ((*_S, "label_file", "*"), abs_path),
        ((*_S, "extends", "file"), abs_path),
        ((*_S, "develop", "watch", "*", "path"), abs_path),
        ((*_S, "volumes", "*"), volume_mount),
        (("configs", "*", "file"), maybe_unix),
        (("secrets", "*", "file"), maybe_unix),
        (("include", "path"), abs_path),
        (("include", "project_directory"), abs_path),
        (("include", "env_file"), abs_path),
        (("volumes", "*"), volume_driver_opts),
    ]
    return _walk(document, (), table)


def resolve_environment(document: dict[str, Any], environment: Mapping[str, str]) -> None:
    """Bare ``KEY`` entries of list-form ``environment`` take the value from the project environment;
    ``secrets``/``configs`` with ``environment:`` get their content."""
    services = document.get("services")
    if isinstance(services, dict):
        for service in services.values():
            if not isinstance(service, dict) or not isinstance(service.get("environment"), list):
                continue
            resolved: list[Any] = []
            for entry in service["environment"]:
                if not isinstance(entry, str):
                    continue
                if entry in environment:
                    resolved.append(f"{entry}={environment[entry]}")
                else:
                    resolved.append(entry)
            service["environment"] = resolved
    for kind, target_key in (("secrets", "x-#value"), ("configs", "content")):
        resources = document.get(kind)
        if not isinstance(resources, dict):
            continue
        for resource in resources.values():
            if (
                isinstance(resource, dict)
                and isinstance(resource.get("environment"), str)
                and resource["environment"] in environment
            ):
                resource[target_key] = environment[resource["environment"]]


# --- normalisation -----------------------------------------------------------------------------------


def _resolve_bare(value: Any, lookup: Mapping[str, str], keep_empty: bool) -> Any:
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if isinstance(item, str):
                if "=" not in item:
                    if item in lookup:
                        out.append(f"{item}={lookup[item]}")
                    elif keep_empty:
                        out.append(item)
                    continue
                out.append(item)
        return out
    if isinstance(value, dict):
        resolved: dict[str, Any] = {}
        for k, v in value.items():
            if v is not None:
                resolved[k] = v
            elif k in lookup:
                resolved[k] = lookup[k]
            elif keep_empty:
                resolved[k] = None
        return resolved
    return value


def _implied_dependency(restart: bool) -> dict[str, Any]:
    return {"condition": "service_started", "restart": restart, "required": True}


def normalize(document: dict[str, Any], project_name: str, environment: Mapping[str, str]) -> dict[str, Any]:
    """compose-go's Normalize: default network, build defaults, implied depends_on, resource names."""
    networks = document.get("networks")
    if not isinstance(networks, dict):
        networks = {}
    uses_default = False
    services = document.get("services")
    if isinstance(services, dict):
        for service in services.values():
            if not isinstance(service, dict) or "provider" in service or "network_mode" in service:
                continue
            nets = service.get("networks")
            if nets is None or (isinstance(nets, dict) and len(nets) == 0):
                service["networks"] = {"default": None}
                uses_default = True
            elif isinstance(nets, dict) and "default" in nets:
                uses_default = True
        for service in services.values():
            if not isinstance(service, dict):
                continue
            if service.get("pull_policy") == "if_not_present":
                service["pull_policy"] = "missing"
            build = service.get("build")
            if isinstance(build, dict):
                if build.get("context") is None:
                    build["context"] = "."
                if build.get("dockerfile") is None and build.get("dockerfile_inline") is None:
                    build["dockerfile"] = "Dockerfile"
                if "args" in build:
                    build["args"] = _resolve_bare(build["args"], environment, False)
            if "environment" in service:
                service["environment"] = _resolve_bare(service["environment"], environment, True)
            depends_on = service.get("depends_on")
            if not isinstance(depends_on, dict):
                depends_on = {}
            for link in service.get("links") or []:
                parts = str(link).split(":")
                name = parts[0] if len(parts) == 2 else str(link)
                depends_on.setdefault(name, _implied_dependency(True))
            for namespace in ("network_mode", "ipc", "pid", "uts", "cgroup"):
                ref = service.get(namespace)
                if isinstance(ref, str) and ref.startswith("service:"):
                    depends_on.setdefault(ref[len("service:") :], _implied_dependency(True))
            volumes = service.get("volumes")
            if isinstance(volumes, list):
                for volume in volumes:
                    if isinstance(volume, dict) and isinstance(volume.get("target"), str):
                        volume["target"] = _clean(volume["target"])
            for ref in service.get("volumes_from") or []:
                if not str(ref).startswith("container:"):
                    depends_on.setdefault(str(ref).split(":")[0], _implied_dependency(False))
            if depends_on:
                service["depends_on"] = depends_on
    if "default" not in networks and uses_default:
        networks["default"] = None
    if networks:
        document["networks"] = networks
    for kind in ("networks", "volumes", "configs", "secrets"):
        resources = document.get(kind)
        if not isinstance(resources, dict):
            continue
        for key in list(resources):
            resource = resources[key] if isinstance(resources[key], dict) else {}
            if resource.get("name") is None:
                external = resource.get("external")
                if external is True or (isinstance(external, str) and external.lower() in ("true", "1", "t")):
                    resource["name"] = key
                else:
                    resource["name"] = f"{project_name}_{key}"
            resources[key] = resource
    return document


def _clean(target: str) -> str:
    """Go's ``path.Clean``."""
    if target == "":
        return "."
    cleaned = posixpath.normpath(target)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned
