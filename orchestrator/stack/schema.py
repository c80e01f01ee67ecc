"""PURE. Validation of a merged Compose document against the Compose Specification JSON schema.

Owns loading the schema (``data/compose-spec.json``, Apache-2.0, see ``data/README.md``), building
the validator once per process (lazily: importing jsonschema costs tens of milliseconds, so a CLI
that never validates never pays for it), and turning the first schema violation into a
:class:`~orchestrator.errors.Problem` with the dotted path. Called by :mod:`orchestrator.stack.loader`.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from orchestrator.errors import Problem, StackError


@cache
def _validator() -> Any:
    import jsonschema

    text = resources.files("orchestrator.stack").joinpath("data/compose-spec.json").read_text()
    schema = json.loads(text)
    # the schema declares draft-07 (its $schema URL lacks the trailing '#' jsonschema looks up)
    return jsonschema.Draft7Validator(schema)


def _dotted(path: Any) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def _describe(error: Any) -> str:
    where = _dotted(error.absolute_path)
    validator = error.validator
    if validator == "additionalProperties":
        patterns = list(error.schema.get("patternProperties", {}))
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        extra = [e for e in extra if not any(re.match(p, e) for p in patterns)]
        names = ", ".join(repr(e) for e in extra)
        return f"additional properties {names} not allowed"
    if validator == "type":
        expected = error.validator_value
        kinds = expected if isinstance(expected, list) else [expected]
        return f"{where or '(root)'} must be " + " or ".join(_TYPE_NAMES.get(str(n), str(n)) for n in kinds)
    if validator in ("oneOf", "anyOf") and error.context:
        best = min(error.context, key=lambda e: (len(list(e.absolute_path)), e.validator != "type"))
        return _describe(best)
    return f"{where or '(root)'}: {error.message}"


def validate(document: dict[str, Any], filename: str | None = None) -> None:
    """Raise :class:`StackError` if ``document`` violates the Compose schema."""
    validator = _validator()
    error = next(iter(validator.iter_errors(document)), None)
    if error is None:
        return
    import jsonschema.exceptions

    best = jsonschema.exceptions.best_match([error, *validator.iter_errors(document)])
    path = _dotted(best.absolute_path)
    message = _describe(best)
    if best.validator == "additionalProperties" and isinstance(best.instance, dict):
        extra = [k for k in best.instance if k not in best.schema.get("properties", {})]
        if extra:
            # point at the offending key itself
            path = f"{path}.{extra[0]}" if path else extra[0]
    raise StackError(Problem(message, file=filename, path=path or None))
