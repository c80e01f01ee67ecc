"""PURE. Compose-flavoured YAML: YAML 1.2 scalar rules on top of pyyaml's C parser, with positions.

Owns: turning one file's text into plain Python values (dict/list/str/int/float/bool/None), one
value per YAML document, plus a table of where every node came from, the ``!reset`` / ``!override``
paths of each document, and the guards against alias bombs and duplicate keys. Called by
:mod:`orchestrator.stack.loader` for every file it reads (main files, overrides, extends, include).

Scalars resolve the way go-yaml v3 does when decoding into ``any``: only ``true/false`` (three
spellings each) are booleans, ``yes/no/on/off`` stay strings, ``22:22`` is a string, ``0x``/``0o``
and Go's base-0 integer syntax are integers, ``~``/``null``/empty are null.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.errors import Problem, StackError

# the C parser (libyaml) is several times faster than the pure-Python one
_Parser: Any
try:
    from yaml import cyaml

    _Parser = cyaml.CParser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - libyaml is present in our venv
    from yaml import reader, scanner
    from yaml.parser import Parser

    class _PureParser(reader.Reader, scanner.Scanner, Parser):
        pass

    _Parser = _PureParser


MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 200
RESET_TAG = "!reset"
OVERRIDE_TAG = "!override"
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_PLAIN = "?plain"  # our marker for untagged plain scalars

Path = tuple[str | int, ...]


class _Composer(_Parser, yaml.resolver.BaseResolver):
    """Parser + composer with NO implicit resolvers: plain scalars keep the default str tag,
    so we can apply our own (1.2) rules and still see explicit tags such as ``!!str``."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        yaml.resolver.BaseResolver.__init__(self)

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode and implicit[0]:
            return _PLAIN
        return str(super().resolve(kind, value, implicit))


@dataclass
class YamlDocument:
    """One YAML document of a file: its value, node positions and ``!reset``/``!override`` paths."""

    value: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    reset_paths: list[Path] = field(default_factory=list)
    override_paths: list[Path] = field(default_factory=list)


_TIMESTAMP_RE = re.compile(
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:(?:[Tt][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2}))"
    r"|(?: [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]+)?))?$"
)


class YamlTimestamp(str):
    """An unquoted date/time: go-yaml decodes it as a time value, which Compose's schema then
    rejects ("invalid jsonType time.Time") wherever the schema looks at it."""

    def go_text(self) -> str:
        """How Go prints the time value (RFC 3339, UTC when no zone was given)."""
        m = re.match(
            r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[Tt ]([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})"
            r"(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})?)?$",
            self,
        )
        if m is None:
            return str(self)
        year, month, day, hour, minute, second, fraction, zone = m.groups()
        text = f"{year}-{int(month):02d}-{int(day):02d}T{int(hour or 0):02d}:{int(minute or 0):02d}:{int(second or 0):02d}"
        if fraction and fraction.rstrip("0"):
            text += "." + fraction[:9].rstrip("0")
        return text + (zone if zone and zone != "+00:00" else "Z")

    def go_string(self) -> str:
        """Go's ``fmt.Sprint`` of the time value: ``2023-01-01 00:00:00 +0000 UTC``."""
        rfc = self.go_text()
        date, _, rest = rfc.partition("T")
        if rest.endswith("Z"):
            return f"{date} {rest[:-1]} +0000 UTC"
        clock, zone = rest[:-6], rest[-6:].replace(":", "")
        return f"{date} {clock} {zone} {zone}"


class GoTime(str):
    """A time value as Go prints it: a plain YAML scalar, a JSON string."""


_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL = {
    "~": None,
    "null": None,
    "Null": None,
    "NULL": None,
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
    ".inf": float("inf"),
    ".Inf": float("inf"),
    ".INF": float("inf"),
    "+.inf": float("inf"),
    "+.Inf": float("inf"),
    "+.INF": float("inf"),
    "-.inf": float("-inf"),
    "-.Inf": float("-inf"),
    "-.INF": float("-inf"),
    ".nan": float("nan"),
    ".NaN": float("nan"),
    ".NAN": float("nan"),
}
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def go_parse_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(s, 0, 64)`` (then ParseUint): sign, 0x/0o/0b prefixes, leading-0 octal."""
    s = text
    sign = 1
    if s[:1] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if not s:
        return None
    base = 10
    low = s.lower()
    if low.startswith("0x"):
        base, s = 16, s[2:]
    elif low.startswith("0o"):
        base, s = 8, s[2:]
    elif low.startswith("0b"):
        base, s = 2, s[2:]
    elif len(s) > 1 and s[0] == "0":
        base, s = 8, s[1:]
    if not s or not all(c in "0123456789abcdefABCDEF"[: base if base <= 10 else 22] for c in s):
        return None
    try:
        value = sign * int(s, base)
    except ValueError:
        return None
    if value < _INT64_MIN or value > _UINT64_MAX or (sign < 0 and value < _INT64_MIN):
        return None
    return value


def resolve_plain(text: str) -> Any:
    """The value of an untagged plain scalar, as go-yaml v3 resolves it into ``any``."""
    if text == "":
        return None
    if text in _SPECIAL:
        return _SPECIAL[text]
    first = text[0]
    if first.isdigit() and _TIMESTAMP_RE.match(text):
        return YamlTimestamp(text)
    if first.isdigit() or first in "+-.":
        plain = text.replace("_", "")
        value = go_parse_int(plain)
        if value is not None:
            return value
        if _FLOAT_RE.match(plain):
            try:
                return float(plain)
            except ValueError:
                pass
    return text


def _resolve_tagged(node: ScalarNode) -> Any:
    tag = node.tag
    text = node.value
    if tag == _STR:
        return text
    if tag == _INT:
        v = go_parse_int(text.replace("_", ""))
        if v is None:
            raise ValueError(f"cannot decode !!str `{text}` as a !!int")
        return v
    if tag == _FLOAT:
        return float(text)
    if tag == _BOOL:
        return text in ("true", "True", "TRUE")
    if tag == _NULL:
        return None
    return text


class _Builder:
    """Turns composed nodes into plain values, guarding against alias expansion bombs."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.positions: dict[Path, tuple[int, int]] = {}
        self.reset_paths: list[Path] = []
        self.override_paths: list[Path] = []
        self.decode_count = 0
        self.alias_count = 0
        self.anchored: set[int] = set()

    def problem(self, node: Node, message: str, path: Path) -> StackError:
        return StackError(
            Problem(
                message,
                file=self.filename,
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
                path=format_path(path) or None,
            )
        )

    def _count(self, node: Node, path: Path, seen: dict[int, int]) -> None:
        self.decode_count += 1
        if id(node) in seen:
            self.alias_count += 1
        # Same rule as go-yaml's "excessive aliasing" check: a document mostly made of alias
        # expansions is rejected before it can blow up memory.
        if (
            self.alias_count > 100
            and self.decode_count > 1000
            and self.alias_count / self.decode_count > _allowed_alias_ratio(self.decode_count)
        ) or self.decode_count > 5_000_000:
            raise self.problem(node, "document contains excessive aliasing (alias bomb?)", path)

    def build(self, node: Node, path: Path, seen: dict[int, int], stack: tuple[int, ...]) -> Any:
        self._count(node, path, seen)
        if len(stack) > MAX_DEPTH:
            raise self.problem(node, f"document is nested deeper than {MAX_DEPTH} levels", path)
        seen[id(node)] = seen.get(id(node), 0) + 1
        if id(node) in stack:
            raise self.problem(node, "recursive alias: a node contains itself", path)
        if path not in self.positions:
            self.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if node.tag == RESET_TAG:
            self.reset_paths.append(path)
            return _RESET
        if node.tag == OVERRIDE_TAG:
            self.override_paths.append(path)
        if isinstance(node, ScalarNode):
            if node.tag == _PLAIN:
                return resolve_plain(node.value)
            if node.tag == OVERRIDE_TAG and node.style in (None, ""):
                return resolve_plain(node.value)
            try:
                return _resolve_tagged(node)
            except ValueError as exc:
                raise self.problem(node, str(exc), path) from exc
        inner = (*stack, id(node))
        if isinstance(node, SequenceNode):
            out: list[Any] = []
            for item in node.value:
                value = self.build(item, (*path, len(out)), seen, inner)
                if value is not _RESET:
                    out.append(value)
            return out
        if isinstance(node, MappingNode):
            return self.build_mapping(node, path, seen, inner)
        raise self.problem(node, f"unsupported YAML node {type(node).__name__}", path)

    def build_mapping(
        self, node: MappingNode, path: Path, seen: dict[int, int], stack: tuple[int, ...]
    ) -> Any:
        result: dict[str, Any] = {}
        explicit: set[str] = set()
        merged_sources: list[Node] = []
        seen_keys: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self.problem(key_node, "mapping keys must be strings", path)
            key_value = resolve_plain(key_node.value) if key_node.tag == _PLAIN else key_node.value
            if key_node.tag == _MERGE or (key_node.tag == _PLAIN and key_node.value == "<<"):
                key = "<<"
            else:
                key = key_node.value
                if not isinstance(key_value, str):
                    # null, boolean and number keys are rejected by compose-go
                    raise self.problem(
                        key_node,
                        f"non-string key {'at top level' if not path else 'in ' + format_path(path)}: {key_node.value}",
                        path,
                    )
            if key in seen_keys:
                raise self.problem(
                    key_node,
                    f"mapping key {key!r} already defined at line {seen_keys[key]}",
                    (*path, key),
                )
            seen_keys[key] = key_node.start_mark.line + 1
            if key == "<<":
                merged_sources.append(value_node)
                continue
            explicit.add(key)
            value = self.build(value_node, (*path, key), seen, stack)
            if value is _RESET:
                continue
            result[key] = value
        if merged_sources:
            for source in merged_sources:
                self._merge_into(result, explicit, source, path, seen, stack)
        return result

    def _merge_into(
        self,
        result: dict[str, Any],
        explicit: set[str],
        source: Node,
        path: Path,
        seen: dict[int, int],
        stack: tuple[int, ...],
    ) -> None:
        if isinstance(source, SequenceNode):
            for item in source.value:
                self._merge_into(result, explicit, item, path, seen, stack)
            return
        if not isinstance(source, MappingNode):
            raise self.problem(source, "map merge requires map or sequence of maps as the value", path)
        value = self.build(source, path, seen, stack)
        for k, v in value.items():
            if k not in explicit and k not in result:
                result[k] = v


class _Reset:
    """Marker for a ``!reset`` node: the key (or list item) is dropped."""


_RESET = _Reset()


def _allowed_alias_ratio(decode_count: int) -> float:
    if decode_count <= 400_000:
        return 0.99
    if decode_count >= 4_000_000:
        return 0.10
    return 0.99 - 0.89 * (decode_count - 400_000) / 3_600_000


def format_path(path: Path) -> str:
    """``("services", "web", "ports", 0)`` → ``services.web.ports[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_documents(text: str, filename: str) -> list[YamlDocument]:
    """Every document of a Compose file, as plain values with positions.

    Raises :class:`StackError` with file:line:col for syntax errors, duplicate keys, alias bombs
    and files over :data:`MAX_FILE_BYTES`.
    """
    if len(text) > MAX_FILE_BYTES:
        raise StackError(
            Problem(
                f"file is too large ({len(text) // (1024 * 1024)} MiB; the limit is "
                f"{MAX_FILE_BYTES // (1024 * 1024)} MiB)",
                file=filename,
            )
        )
    loader = _Composer(text)
    docs: list[YamlDocument] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            builder = _Builder(filename)
            value = builder.build(node, (), {}, ())
            if value is _RESET:
                value = None
            docs.append(YamlDocument(value, builder.positions, builder.reset_paths, builder.override_paths))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise StackError(
            Problem(
                f"yaml: {message}",
                file=filename,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            )
        ) from exc
    except yaml.YAMLError as exc:
        raise StackError(Problem(f"yaml: {exc}", file=filename)) from exc
    finally:
        dispose = getattr(loader, "dispose", None)
        if dispose is not None:
            dispose()
    return docs
