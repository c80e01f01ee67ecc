"""PURE. ``.env`` files: the syntax Docker Compose accepts (``KEY=value``, ``export``, quotes,
escapes in double quotes, `` #`` comments, bare ``KEY`` inheriting from the environment) and
``${VAR}`` expansion inside values.

Owns parsing only; the text comes from a FileSource. Called by :mod:`orchestrator.stack.loader`
for the project ``.env``/``--env-file`` files, ``include`` env files and services' ``env_file``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from orchestrator.stack.interpolate import InvalidTemplate, MissingRequired, substitute

_ESCAPE = re.compile(r'(\\(?:[abcfnrtv$"\\]|0\d{0,3}))')
_EXPORT = re.compile(r"^export\s+")
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    '"': '"',
    "\\": "\\",
}
_SPACE = "\t\v\f\r \x85\xa0"


class DotEnvError(ValueError):
    """A syntax error in an env file (message carries the line number)."""


def _expand_escapes(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
        seq = match.group(0)
        if seq == "\\$":
            return "$$"
        if seq.startswith("\\0"):
            digits = seq[2:]
            if not digits:
                return "\x00"
            try:
                return chr(int(digits, 8)) if len(digits) == 3 else seq
            except ValueError:
                return seq
        return _SIMPLE_ESCAPES.get(seq[1], seq)

    return _ESCAPE.sub(repl, text)


def parse_dotenv(
    text: str,
    lookup: Callable[[str], str | None] = lambda _k: None,
) -> dict[str, str]:
    """Parse an env file. ``lookup`` supplies variables for ``${X}`` expansion and bare ``KEY`` lines;
    variables defined earlier in the same file are visible to later values."""
    out: dict[str, str] = {}
    src = text.replace("\r\n", "\n")
    line = 1

    def resolve(name: str) -> str | None:
        found = lookup(name)
        if found is not None:
            return found
        return out.get(name)

    def expand(value: str) -> str:
        try:
            return substitute(value, resolve)
        except (InvalidTemplate, MissingRequired) as exc:
            raise DotEnvError(f"line {line}: {exc}") from exc

    while True:
        # skip whitespace and comment lines
        while True:
            stripped = src.lstrip(" \t\n\v\f\r\x85\xa0")
            line += src[: len(src) - len(stripped)].count("\n")
            src = stripped
            if not src:
                return out
            if src[0] != "#":
                break
            nl = src.find("\n")
            if nl == -1:
                return out
            src = src[nl:]
        if _EXPORT.match(src):
            src = src[len("export") :].lstrip(_SPACE)
        key = ""
        offset = -1
        inherited = False
        for i, ch in enumerate(src):
            if ch in _SPACE:
                continue
            if ch in "=:\n":
                key = src[:i]
                offset = i + 1
                inherited = ch == "\n"
                break
            if ch in "_.-[]" or ch.isalnum():
                continue
            first_line = src.split("\n", 1)[0]
            raise DotEnvError(f"line {line}: unexpected character {ch!r} in variable name {first_line!r}")
        if offset == -1:
            # a last line without '=' or newline: a bare key at end of file
            key, offset, inherited = src, len(src), True
        if inherited and " " not in key:
            line += 1
        key = key.rstrip()
        if " " in key:
            raise DotEnvError(f"line {line}: key cannot contain a space")
        rest = src[offset:].lstrip(_SPACE)
        if inherited:
            found = lookup(key)
            if found is not None:
                out[key] = found
            src = rest
            continue
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            chars: list[str] = []
            escaped = False
            end = -1
            for i in range(1, len(rest)):
                ch = rest[i]
                if ch == "\n":
                    line += 1
                if ch != quote:
                    if not escaped and ch == "\\":
                        escaped = True
                        continue
                    if escaped:
                        escaped = False
                        chars.append("\\")
                    chars.append(ch)
                    continue
                if escaped:
                    escaped = False
                    chars.append(ch)
                    continue
                end = i
                break
            if end == -1:
                first_line = rest.split("\n", 1)[0]
                raise DotEnvError(f"line {line}: unterminated quoted value {first_line}")
            value = "".join(chars)
            if quote == '"':
                value = expand(_expand_escapes(value))
            out[key] = value
            src = rest[end + 1 :]
            continue
        value, _, src = rest.partition("\n")
        line += 1
        value = value.split(" #", 1)[0].rstrip()
        out[key] = expand(value)
