"""PURE. Validation of a merged Compose document against the Compose Specification JSON schema.

Owns loading the schema (``data/compose-spec.json``, Apache-2.0, see ``data/README.md``) and a
small draft-07 validator for exactly the keywords that schema uses (``type``, ``properties``,
``patternProperties``, ``additionalProperties``, ``items``, ``oneOf``, ``required``, ``enum``,
``uniqueItems``, ``minimum``/``maximum``, ``pattern``, ``$ref``). It replaces the general
``jsonschema`` package here because importing and building that costs more than the whole rest of
``orc config``; ``tests/unit/stack/test_schema.py`` checks the two agree. The first violation
becomes a :class:`~orchestrator.errors.Problem` with the dotted path. Called by
:mod:`orchestrator.stack.loader`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from orchestrator.errors import Problem, StackError
from orchestrator.stack.yamlsrc import YamlTimestamp

DocPath = tuple[str | int, ...]


@cache
def compose_schema() -> dict[str, Any]:
    # a plain path (not importlib.resources, whose import costs more than reading the file)
    text = (Path(__file__).parent / "data" / "compose-spec.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True)
class Violation:
    """One schema violation: where, which keyword, and a readable message."""

    path: DocPath
    keyword: str
    message: str
    key: str | None = None  # the offending key for additionalProperties


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def _is_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float))
    return False


def _canonical(value: Any) -> str:
    """Equality as JSON Schema sees it (``1`` and ``true`` differ, ``1`` and ``1.0`` do not)."""
    return json.dumps(value, sort_keys=True, default=str, allow_nan=True).replace(".0,", ",")


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def dotted(path: DocPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class Validator:
    """Draft-07 validation for the keyword subset of the Compose schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.root = schema

    def _resolve(self, ref: str) -> dict[str, Any]:
        if not ref.startswith("#/"):
            raise ValueError(f"unsupported $ref {ref}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def errors(self, value: Any, schema: Any, path: DocPath = ()) -> Iterator[Violation]:
        if schema is True or schema == {}:
            return
        if schema is False:
            yield Violation(path, "false", "is not allowed here")
            return
        if "$ref" in schema:
            yield from self.errors(value, self._resolve(schema["$ref"]), path)
            return
        if isinstance(value, YamlTimestamp):
            yield Violation(path, "type", "is an unquoted date/time (invalid jsonType time.Time); quote it")
            return
        kind = schema.get("type")
        if kind is not None:
            kinds = kind if isinstance(kind, list) else [kind]
            if not any(_is_type(value, k) for k in kinds):
                names = " or ".join(_TYPE_NAMES.get(str(k), str(k)) for k in kinds)
                yield Violation(path, "type", f"must be {names}")
                return
        if "enum" in schema and not any(_json_equal(value, e) for e in schema["enum"]):
            allowed = ", ".join(json.dumps(e) for e in schema["enum"])
            yield Violation(path, "enum", f"must be one of {allowed}")
        if isinstance(value, str) and "pattern" in schema and not _regex(schema["pattern"]).search(value):
            yield Violation(path, "pattern", f"{value!r} does not match {schema['pattern']!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                yield Violation(path, "minimum", f"must be greater than or equal to {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                yield Violation(path, "maximum", f"must be less than or equal to {schema['maximum']}")
        if isinstance(value, dict):
            yield from self._object(value, schema, path)
        if isinstance(value, list):
            items = schema.get("items")
            if isinstance(items, dict):
                for i, item in enumerate(value):
                    yield from self.errors(item, items, (*path, i))
            elif isinstance(items, list):
                for i, (item, sub) in enumerate(zip(value, items, strict=False)):
                    yield from self.errors(item, sub, (*path, i))
            if schema.get("uniqueItems"):
                seen: set[str] = set()
                for i, item in enumerate(value):
                    key = _canonical(item) + type(item).__name__ * isinstance(item, bool)
                    if key in seen:
                        yield Violation((*path, i), "uniqueItems", f"{_short(item)} is duplicated")
                        break
                    seen.add(key)
        if "oneOf" in schema:
            yield from self._one_of(value, schema["oneOf"], path)

    def _object(self, value: dict[str, Any], schema: dict[str, Any], path: DocPath) -> Iterator[Violation]:
        for name in schema.get("required", ()):
            if name not in value:
                yield Violation(path, "required", f"{name} is required")
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        additional = schema.get("additionalProperties", True)
        for key, item in value.items():
            matched = False
            if key in properties:
                matched = True
                yield from self.errors(item, properties[key], (*path, key))
            for pattern, sub in patterns.items():
                if _regex(pattern).search(key):
                    matched = True
                    yield from self.errors(item, sub, (*path, key))
            if not matched:
                if additional is False:
                    yield Violation(
                        path, "additionalProperties", f"additional properties {key!r} not allowed", key
                    )
                elif isinstance(additional, dict):
                    yield from self.errors(item, additional, (*path, key))

    def _one_of(self, value: Any, branches: list[Any], path: DocPath) -> Iterator[Violation]:
        failures: list[list[Violation]] = []
        passed = 0
        for branch in branches:
            errs = list(self.errors(value, branch, path))
            if errs:
                failures.append(errs)
            else:
                passed += 1
        if passed == 1:
            return
        if passed > 1:
            yield Violation(path, "oneOf", "matches more than one allowed form")
            return
        yield _best([e for errs in failures for e in errs], path)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) < 60 else text[:57] + "..."


def _best(violations: list[Violation], path: DocPath) -> Violation:
    """Among the failures of every alternative, the one that says most (deepest, not a type clash)."""
    if not violations:
        return Violation(path, "oneOf", "does not match any allowed form")
    return max(violations, key=lambda v: (len(v.path), v.keyword != "type"))


@cache
def _validator() -> Validator:
    return Validator(compose_schema())


def first_violation(document: Any) -> Violation | None:
    """The violation Compose would report first, or None when the document is valid."""
    return next(_validator().errors(document, compose_schema()), None)


def validate(document: dict[str, Any], filename: str | None = None) -> None:
    """Raise :class:`StackError` if ``document`` violates the Compose schema."""
    violation = first_violation(document)
    if violation is None:
        return
    path = violation.path
    if violation.key is not None:
        path = (*path, violation.key)  # point at the offending key itself
    where = dotted(path)
    message = violation.message
    if violation.keyword in ("type", "enum", "minimum", "maximum", "pattern", "oneOf"):
        message = f"{dotted(violation.path) or '(root)'} {message}"
    raise StackError(Problem(message, file=filename, path=where or None))
