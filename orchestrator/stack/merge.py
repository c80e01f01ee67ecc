"""PURE. Merging Compose documents (``-f a -f b``, ``extends``) and de-duplicating lists by key.

Owns the per-path merge rules: mappings merge key by key, most lists append, ``command``,
``entrypoint`` and ``healthcheck.test`` are replaced, mapping-or-list fields (``environment``,
``labels``, ...) are merged as ``KEY=VALUE`` sequences, ``depends_on``/``networks`` merge as
mappings, ``build`` strings become ``{context: ...}``, ``logging`` with a different driver replaces.
Then :func:`enforce_unicity` keeps one entry per key (the last one, at the first one's position)
in lists such as ports, volumes, environment. Called by :mod:`orchestrator.stack.loader`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.errors import Problem, StackError
from orchestrator.stack.formats import FormatError, parse_volume
from orchestrator.stack.yamlsrc import YamlTimestamp

PathT = tuple[str, ...]


def _matches(path: PathT, pattern: PathT) -> bool:
    return len(path) == len(pattern) and all(p == "*" or p == q for p, q in zip(pattern, path, strict=True))


def _go_sprint(value: Any) -> str:
    if isinstance(value, YamlTimestamp):
        return value.go_string()
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "<nil>"
    if isinstance(value, float):
        return format_go_float(value)
    return str(value)


def format_go_float(value: float) -> str:
    """Go's ``%v`` for a float64 (shortest repr, exponent for very large/small)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        return f"{mantissa}e{sign}{digits}"
    return text


def to_sequence(value: Any) -> list[Any]:
    """A mapping-or-list field as a ``KEY=VALUE`` list (mappings sorted, as compose-go does)."""
    if isinstance(value, dict):
        seq: list[str] = []
        for k, v in value.items():
            if v is None:
                seq.append(k)
            elif isinstance(v, list):
                seq.extend(f"{k}={_go_sprint(x)}" for x in v)
            else:
                seq.append(f"{k}={_go_sprint(v)}")
        return sorted(seq)
    if isinstance(value, list):
        return list(value)
    if isinstance(value, str):
        return [value]
    return []


def _to_mapping(value: Any, default: dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(s): (dict(default) if default is not None else None) for s in value}
    return {}


Merger = Callable[[Any, Any, PathT], Any]


def _override(_base: Any, other: Any, _path: PathT) -> Any:
    return other


def _merge_to_sequence(base: Any, other: Any, _path: PathT) -> Any:
    return to_sequence(base) + to_sequence(other)


def _merge_extra_hosts(base: Any, other: Any, _path: PathT) -> Any:
    right = to_sequence(base)
    left = [v for v in to_sequence(other) if v not in right]
    return right + left


_DEPENDS_DEFAULT = {"condition": "service_started", "required": True}


def _merge_depends_on(base: Any, other: Any, path: PathT) -> Any:
    return merge_mappings(_to_mapping(base, _DEPENDS_DEFAULT), _to_mapping(other, _DEPENDS_DEFAULT), path)


def _merge_as_mapping(base: Any, other: Any, path: PathT) -> Any:
    return merge_mappings(_to_mapping(base, None), _to_mapping(other, None), path)


def _merge_build(base: Any, other: Any, path: PathT) -> Any:
    def as_build(v: Any) -> dict[str, Any]:
        if isinstance(v, str):
            return {"context": v}
        return v if isinstance(v, dict) else {}

    return merge_mappings(as_build(base), as_build(other), path)


def _merge_logging(base: Any, other: Any, path: PathT) -> Any:
    if not isinstance(base, dict) or not isinstance(other, dict):
        return other
    if "driver" in other and "driver" in base and base["driver"] != other["driver"]:
        return other
    return merge_mappings(base, other, path)


def _merge_ulimit(base: Any, other: Any, path: PathT) -> Any:
    if isinstance(other, dict):
        return merge_mappings(dict(other), other, path)
    return other


def _merge_ipam_config(base: Any, other: Any, path: PathT) -> Any:
    if not isinstance(base, list) or not isinstance(other, list):
        raise StackError(Problem(f"unexpected type for {'.'.join(path)}", path=".".join(path)))
    result: list[dict[str, Any]] = []
    for original in base:
        right = _to_mapping(original, None)
        for override in other:
            left = _to_mapping(override, None)
            if left.get("subnet") != right.get("subnet") and not any(
                a.get("subnet") == left.get("subnet") for a in result
            ):
                result.append(left)
                continue
            merged = merge_mappings(right, left, path)
            idx = next((i for i, a in enumerate(result) if a.get("subnet") == merged.get("subnet")), -1)
            if idx >= 0:
                result[idx] = merged
            else:
                result.append(merged)
    return result


_S = ("services", "*")
_SPECIALS: list[tuple[PathT, Merger]] = [
    (("networks", "*", "ipam", "config"), _merge_ipam_config),
    (("networks", "*", "labels"), _merge_to_sequence),
    (("volumes", "*", "labels"), _merge_to_sequence),
    ((*_S, "annotations"), _merge_to_sequence),
    ((*_S, "build"), _merge_build),
    ((*_S, "build", "args"), _merge_to_sequence),
    ((*_S, "build", "additional_contexts"), _merge_to_sequence),
    ((*_S, "build", "extra_hosts"), _merge_extra_hosts),
    ((*_S, "build", "labels"), _merge_to_sequence),
    ((*_S, "command"), _override),
    ((*_S, "depends_on"), _merge_depends_on),
    ((*_S, "deploy", "labels"), _merge_to_sequence),
    ((*_S, "dns"), _merge_to_sequence),
    ((*_S, "dns_opt"), _merge_to_sequence),
    ((*_S, "dns_search"), _merge_to_sequence),
    ((*_S, "entrypoint"), _override),
    ((*_S, "env_file"), _merge_to_sequence),
    ((*_S, "label_file"), _merge_to_sequence),
    ((*_S, "environment"), _merge_to_sequence),
    ((*_S, "extra_hosts"), _merge_extra_hosts),
    ((*_S, "healthcheck", "test"), _override),
    ((*_S, "labels"), _merge_to_sequence),
    ((*_S, "volumes", "*", "volume", "labels"), _merge_to_sequence),
    ((*_S, "logging"), _merge_logging),
    ((*_S, "models"), _merge_as_mapping),
    ((*_S, "networks"), _merge_as_mapping),
    ((*_S, "sysctls"), _merge_to_sequence),
    ((*_S, "tmpfs"), _merge_to_sequence),
    ((*_S, "ulimits", "*"), _merge_ulimit),
]
_SPECIALS_BY_LEN: dict[int, list[tuple[PathT, Merger]]] = {}
for _pattern, _merger in _SPECIALS:
    _SPECIALS_BY_LEN.setdefault(len(_pattern), []).append((_pattern, _merger))


def merge_yaml(base: Any, other: Any, path: PathT) -> Any:
    """Merge ``other`` over ``base`` at ``path`` (compose-go's override.Merge rules)."""
    for pattern, merger in _SPECIALS_BY_LEN.get(len(path), ()):
        if _matches(path, pattern):
            return merger(base, other, path)
    if other is None:
        return base
    if isinstance(base, dict):
        if not isinstance(other, dict):
            raise StackError(Problem(f"cannot override {'.'.join(path)}", path=".".join(path)))
        return merge_mappings(base, other, path)
    if isinstance(base, list):
        if not isinstance(other, list):
            raise StackError(Problem(f"cannot override {'.'.join(path)}", path=".".join(path)))
        return base + other
    return other


def merge_mappings(base: dict[str, Any], other: dict[str, Any], path: PathT) -> dict[str, Any]:
    for key, value in other.items():
        if key not in base:
            base[key] = value
            continue
        base[key] = merge_yaml(base[key], value, (*path, key))
    return base


def merge_documents(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Merge a whole file's document over the project so far."""
    return merge_mappings(base, other, ())


def extend_service(base: dict[str, Any], service: dict[str, Any]) -> dict[str, Any]:
    """The service that ``extends`` ``base``: ``service``'s own keys merged over the base's."""
    return merge_yaml(base, service, ("services", "x"))


# --- unicity ---------------------------------------------------------------------------------------

Indexer = Callable[[Any, str], str]


def _key_value_indexer(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value.split("=", 1)[0]
    raise StackError(Problem(f"{where}: unexpected type {type(value).__name__}", path=where))


def _volume_indexer(value: Any, where: str) -> str:
    if isinstance(value, dict):
        target = value.get("target")
        if not isinstance(target, str):
            raise StackError(Problem(f"service volume {where} is missing a mount target", path=where))
        return target
    if isinstance(value, str):
        try:
            return str(parse_volume(value)["target"])
        except FormatError as exc:
            raise StackError(Problem(str(exc), path=where)) from exc
    return ""


def _device_indexer(value: Any, where: str) -> str:
    if isinstance(value, dict):
        target = value.get("target")
        if not isinstance(target, str):
            raise StackError(Problem(f"service device {where} is missing a mount target", path=where))
        return target
    if isinstance(value, str):
        parts = value.split(":")
        return parts[0] if len(parts) == 1 else parts[1]
    return ""


def _expose_indexer(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise StackError(Problem(f"{where}: unsupported expose value {value}", path=where))
    return str(value)


def _mount_indexer(default_dir: str) -> Indexer:
    def index(value: Any, where: str) -> str:
        if isinstance(value, str):
            return f"{default_dir}/{value}"
        if isinstance(value, dict):
            if "target" in value:
                return str(value["target"])
            return f"{default_dir}/{value.get('source')}"
        raise StackError(Problem(f"{where}: unsupported value {value}", path=where))

    return index


def _port_indexer(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        if "target" not in value:
            raise StackError(Problem(f"service ports {where} is missing a target port", path=where))
        # Go's Sprintf("%s:%s:%d/%s"): a published port written as a number does not collide
        # with the same port written as a string, exactly as in compose-go
        return (
            f"{_go_verb_s(value.get('host_ip', '0.0.0.0'))}:{_go_verb_s(value.get('published'))}:"
            f"{_go_verb_d(value.get('target'))}/{_go_verb_s(value.get('protocol', 'tcp'))}"
        )
    if isinstance(value, str):
        return value
    return ""


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def _go_verb_s(value: Any) -> str:
    if value is None:
        return "%!s(<nil>)"
    if isinstance(value, str):
        return value
    return f"%!s({_go_type(value)}={_go_sprint(value)})"


def _go_verb_d(value: Any) -> str:
    if value is None:
        return "%!d(<nil>)"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"%!d({_go_type(value)}={_go_sprint(value)})"


def _env_file_indexer(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "path" in value:
            return str(value["path"])
        raise StackError(Problem(f"environment path attribute {where} is missing", path=where))
    return ""


_UNIQUE: list[tuple[PathT, Indexer]] = [
    (("networks", "*", "labels"), _key_value_indexer),
    (("networks", "*", "ipam", "options"), _key_value_indexer),
    ((*_S, "annotations"), _key_value_indexer),
    ((*_S, "build", "args"), _key_value_indexer),
    ((*_S, "build", "additional_contexts"), _key_value_indexer),
    ((*_S, "build", "platform"), _key_value_indexer),
    ((*_S, "build", "tags"), _key_value_indexer),
    ((*_S, "build", "labels"), _key_value_indexer),
    ((*_S, "cap_add"), _key_value_indexer),
    ((*_S, "cap_drop"), _key_value_indexer),
    ((*_S, "configs"), _mount_indexer("")),
    ((*_S, "deploy", "labels"), _key_value_indexer),
    ((*_S, "dns"), _key_value_indexer),
    ((*_S, "dns_opt"), _key_value_indexer),
    ((*_S, "dns_search"), _key_value_indexer),
    ((*_S, "environment"), _key_value_indexer),
    ((*_S, "env_file"), _env_file_indexer),
    ((*_S, "expose"), _expose_indexer),
    ((*_S, "labels"), _key_value_indexer),
    ((*_S, "links"), _key_value_indexer),
    ((*_S, "networks", "*", "aliases"), _key_value_indexer),
    ((*_S, "networks", "*", "link_local_ips"), _key_value_indexer),
    ((*_S, "ports"), _port_indexer),
    ((*_S, "profiles"), _key_value_indexer),
    ((*_S, "secrets"), _mount_indexer("/run/secrets")),
    ((*_S, "sysctls"), _key_value_indexer),
    ((*_S, "tmpfs"), _key_value_indexer),
    ((*_S, "volumes"), _volume_indexer),
    ((*_S, "devices"), _device_indexer),
]


def _dotted(path: PathT) -> str:
    return ".".join(path)


def enforce_unicity(value: Any, path: PathT = ()) -> Any:
    """Keep one entry per key in keyed lists: a later duplicate replaces the earlier one in place."""
    if isinstance(value, dict):
        for k in list(value):
            value[k] = enforce_unicity(value[k], (*path, k))
        return value
    if isinstance(value, list):
        for pattern, indexer in _UNIQUE:
            if _matches(path, pattern):
                seq: list[Any] = []
                keys: dict[str, int] = {}
                for i, entry in enumerate(value):
                    key = indexer(entry, f"{_dotted(path)}[{i}]")
                    if key in keys:
                        seq[keys[key]] = entry
                    else:
                        keys[key] = len(seq)
                        seq.append(entry)
                return seq
    return value
