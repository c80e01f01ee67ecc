"""PURE. Variable interpolation in Compose values: ``$V ${V} ${V:-d} ${V-d} ${V:?e} ${V?e} ${V:+r}
${V+r}``, nested defaults, ``$$``; and the type casts Compose applies at known paths afterwards.

Owns the template language (same leftmost-first matching and brace handling as compose-go's
``template`` package, so odd inputs behave the same) and the walk over a document that interpolates
values only, never keys. Called by :mod:`orchestrator.stack.loader` per file, and for ``.env`` values
by :mod:`orchestrator.stack.dotenv`. Unset variables are reported through a ``warn`` callback with
Docker Compose's wording; the CLI prints them on stderr.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.errors import Problem, StackError

Lookup = Callable[[str], "str | None"]
Warn = Callable[[str], None]

_PATTERN = re.compile(
    r"\$(?i:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)|\{(?:(?P<braced>[_a-z][_a-z0-9]*(?::?[-+?](.*))?)\}|(?P<invalid>)))"
)


class InvalidTemplate(Exception):
    """A ``$`` that starts no valid substitution."""

    def __init__(self, template: str = "") -> None:
        super().__init__(template)
        self.template = template


class MissingRequired(Exception):
    """``${V:?err}`` / ``${V?err}`` with V missing."""

    def __init__(self, variable: str, reason: str) -> None:
        self.variable = variable
        self.reason = reason
        text = f"required variable {variable} is missing a value"
        super().__init__(f"{text}: {reason}" if reason else text)


def unset_warning(name: str) -> str:
    """Docker Compose's wording for an unset variable."""
    return f'The "{name}" variable is not set. Defaulting to a blank string.'


def _first_brace_closing_index(s: str) -> int:
    depth = 0
    i = 0
    while i < len(s):
        if s[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if s[i] == "{":
            depth += 1
            i += 1
        i += 1
    return -1


_OPERATORS = (":?", "?", ":-", "-", ":+", "+")


def _operator_for(template: str) -> str:
    # the operator appearing first in the text wins; ties keep the listed order
    best = None
    best_index = -1
    for op in _OPERATORS:
        idx = template.find(op)
        if idx < 0:
            continue
        if best is None or idx < best_index:
            best, best_index = op, idx
    return best or ":?"


def _apply_operator(op: str, substitution: str, lookup: Lookup, warn: Warn | None) -> tuple[str, bool]:
    if op not in substitution:
        return "", False
    name, arg = substitution.split(op, 1)
    arg = substitute(arg, lookup, warn)
    value = lookup(name)
    if op in (":?", "?"):
        if value is None or (op == ":?" and value == ""):
            raise MissingRequired(name, arg)
        return value, True
    if op in (":-", "-"):
        if value is None or (op == ":-" and value == ""):
            return arg, True
        return value, True
    # ":+" and "+"
    if value is not None and (op == "+" or value != ""):
        return arg, True
    return value or "", True


def _replace(substring: str, lookup: Lookup, warn: Warn | None) -> str:
    op = _operator_for(substring)
    closing = _first_brace_closing_index(substring)
    rest = ""
    if closing > -1:
        rest = substring[closing + 1 :]
        substring = substring[: closing + 1]
    match = _PATTERN.match(substring)
    if match is None:
        raise InvalidTemplate()
    if match.group("escaped"):
        return "$"
    substitution = match.group("named")
    braced = False
    if not substitution:
        substitution = match.group("braced")
        braced = True
    if not substitution:
        raise InvalidTemplate()
    if braced:
        value, applied = _apply_operator(op, substitution, lookup, warn)
        if applied:
            return value + substitute(rest, lookup, warn)
    found = lookup(substitution)
    if found is None:
        if warn is not None:
            warn(unset_warning(substitution))
        return ""
    return found


def substitute(template: str, lookup: Lookup, warn: Warn | None = None) -> str:
    """Interpolate one string. Raises :class:`InvalidTemplate` or :class:`MissingRequired`."""
    if "$" not in template:
        return template
    first_error: Exception | None = None

    def repl(match: re.Match[str]) -> str:
        nonlocal first_error
        try:
            return _replace(match.group(0), lookup, warn)
        except (InvalidTemplate, MissingRequired) as exc:
            if isinstance(exc, InvalidTemplate) and not exc.template:
                exc.template = template
            if first_error is None:
                first_error = exc
            return ""

    result = _PATTERN.sub(repl, template)
    if first_error is not None:
        raise first_error
    return result


# --- casts ----------------------------------------------------------------------------------------

Cast = Callable[[str], Any]


def _to_int(value: str) -> int:
    text = value.strip() if False else value
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f'strconv.Atoi: parsing "{value}": invalid syntax')
    return int(text)


def _to_float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{value}": invalid syntax') from None


def to_boolean(value: str, warn: Warn | None = None) -> bool:
    """Compose's boolean cast: true/false, and (with a warning) the YAML 1.1 y/yes/on, n/no/off."""
    low = value.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low in ("y", "yes", "on"):
        if warn:
            warn(f'"{value}" for boolean is not supported by YAML 1.2, please use `true`')
        return True
    if low in ("n", "no", "off"):
        if warn:
            warn(f'"{value}" for boolean is not supported by YAML 1.2, please use `false`')
        return False
    raise ValueError(f"invalid boolean: {value}")


_S = ("services", "*")
CAST_PATHS: dict[tuple[str, ...], str] = {
    (*_S, "cpu_count"): "int",
    (*_S, "cpu_percent"): "float",
    (*_S, "cpu_period"): "int",
    (*_S, "cpu_quota"): "int",
    (*_S, "cpu_rt_period"): "int",
    (*_S, "cpu_rt_runtime"): "int",
    (*_S, "cpus"): "float",
    (*_S, "cpu_shares"): "int",
    (*_S, "init"): "bool",
    (*_S, "deploy", "replicas"): "int",
    (*_S, "deploy", "update_config", "parallelism"): "int",
    (*_S, "deploy", "update_config", "max_failure_ratio"): "float",
    (*_S, "deploy", "rollback_config", "parallelism"): "int",
    (*_S, "deploy", "rollback_config", "max_failure_ratio"): "float",
    (*_S, "deploy", "restart_policy", "max_attempts"): "int",
    (*_S, "deploy", "placement", "max_replicas_per_node"): "int",
    (*_S, "healthcheck", "retries"): "int",
    (*_S, "healthcheck", "disable"): "bool",
    (*_S, "oom_kill_disable"): "bool",
    (*_S, "oom_score_adj"): "int",
    (*_S, "pids_limit"): "int",
    (*_S, "ports", "[]", "target"): "int",
    (*_S, "privileged"): "bool",
    (*_S, "read_only"): "bool",
    (*_S, "scale"): "int",
    (*_S, "stdin_open"): "bool",
    (*_S, "tty"): "bool",
    (*_S, "ulimits", "*"): "int",
    (*_S, "ulimits", "*", "hard"): "int",
    (*_S, "ulimits", "*", "soft"): "int",
    (*_S, "volumes", "[]", "read_only"): "bool",
    (*_S, "volumes", "[]", "volume", "nocopy"): "bool",
    ("networks", "*", "external"): "bool",
    ("networks", "*", "internal"): "bool",
    ("networks", "*", "attachable"): "bool",
    ("networks", "*", "enable_ipv4"): "bool",
    ("networks", "*", "enable_ipv6"): "bool",
    ("volumes", "*", "external"): "bool",
    ("secrets", "*", "external"): "bool",
    ("configs", "*", "external"): "bool",
}
_CASTS_BY_LEN: dict[int, list[tuple[tuple[str, ...], str]]] = {}
for _p, _k in CAST_PATHS.items():
    _CASTS_BY_LEN.setdefault(len(_p), []).append((_p, _k))


def _cast_for(path: tuple[str, ...]) -> str | None:
    for pattern, kind in _CASTS_BY_LEN.get(len(path), ()):
        if all(p == "*" or p == q for p, q in zip(pattern, path, strict=True)):
            return kind
    return None


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def interpolate_document(
    document: Mapping[str, Any],
    lookup: Lookup,
    *,
    warn: Warn | None = None,
    filename: str | None = None,
    cast: bool = True,
) -> dict[str, Any]:
    """Interpolate every string value of a parsed file (keys untouched), then cast at Compose's paths.

    Sequence items get the path part ``[]`` (as in compose-go), so casts match any index.
    """

    def walk(value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, str):
            try:
                new = substitute(value, lookup, warn)
            except InvalidTemplate as exc:
                raise StackError(
                    Problem(
                        f"invalid interpolation format for {_dotted(path)}.\n"
                        f"You may need to escape any $ with another $.\n{exc.template}",
                        file=filename,
                        path=_dotted(path),
                    )
                ) from exc
            except MissingRequired as exc:
                raise StackError(
                    Problem(
                        f"error while interpolating {_dotted(path)}: {exc}", file=filename, path=_dotted(path)
                    )
                ) from exc
            if not cast:
                return new
            kind = _cast_for(path)
            if kind is None:
                return new
            try:
                if kind == "int":
                    return _to_int(new)
                if kind == "float":
                    return _to_float(new)
                return to_boolean(new, warn)
            except ValueError as exc:
                raise StackError(
                    Problem(
                        f"error while interpolating {_dotted(path)}: failed to cast to expected type: {exc}",
                        file=filename,
                        path=_dotted(path),
                    )
                ) from exc
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, "[]")) for v in value]
        return value

    return {k: walk(v, (k,)) for k, v in document.items()}
