"""PURE. A YAML emitter that lays documents out like go-yaml v3 with ``SetIndent(2)``.

Owns the scalar style choice (plain when the text reads back as the same string, otherwise single
quotes, double quotes for strings that would resolve to another type, literal blocks for multi-line
text) and the block layout (sequences indented under their key, ``{}``/``[]`` for empty
collections, no line folding). Used by ``orc config --format yaml`` through
:meth:`orchestrator.stack.loader.Project.yaml_text`.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.stack.render import Float32, RawJSON, format_go_float
from orchestrator.stack.yamlsrc import GoTime, YamlTimestamp, resolve_plain

_OLD_BOOL = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"}
_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_ALWAYS_INDICATORS = set("#,[]{}&*!|>'\"%@`")
_FLOW = set(",?[]{}")


def _printable(ch: str) -> bool:
    # libyaml's emitter: tab, CR and NEL are not "printable" and force double quotes
    o = ord(ch)
    return (
        o == 0xA
        or 0x20 <= o <= 0x7E
        or 0xA0 <= o <= 0xD7FF
        or 0xE000 <= o <= 0xFFFD
        or 0x10000 <= o <= 0x10FFFF
    ) and o != 0xFEFF


def _analyze(text: str) -> tuple[bool, bool, bool]:
    """(plain allowed, single-quoted allowed, block allowed), as libyaml decides in block context."""
    if text == "":
        return False, True, False
    if text.startswith(("---", "...")):
        return False, True, True
    block_indicators = False
    special = False
    line_breaks = False
    leading_space = leading_break = trailing_space = trailing_break = False
    break_space = space_break = False
    previous_space = previous_break = False
    preceded_by_whitespace = True
    n = len(text)
    for i, ch in enumerate(text):
        followed_by_whitespace = i + 1 >= n or text[i + 1] in " \t\r\n\x85\u2028\u2029"
        if i == 0:
            if ch in _ALWAYS_INDICATORS:
                block_indicators = True
            if ch in "?:" and followed_by_whitespace:
                block_indicators = True
            if ch == "-" and followed_by_whitespace:
                block_indicators = True
        else:
            if ch == ":" and followed_by_whitespace:
                block_indicators = True
            if ch == "#" and preceded_by_whitespace:
                block_indicators = True
        if not _printable(ch) or (not ch.isascii() and False):
            special = True
        if ch in "\n\r\x85\u2028\u2029":
            line_breaks = True
        if ch == " ":
            if i == 0:
                leading_space = True
            if i == n - 1:
                trailing_space = True
            if previous_break:
                break_space = True
            previous_space, previous_break = True, False
        elif ch in "\n\r\x85\u2028\u2029":
            if i == 0:
                leading_break = True
            if i == n - 1:
                trailing_break = True
            if previous_space:
                space_break = True
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_whitespace = ch in " \t\r\n\x85\u2028\u2029"
    plain = True
    single = True
    block = True
    if leading_space or leading_break or trailing_space or trailing_break:
        plain = False
    if trailing_space:
        block = False
    if break_space:
        plain = single = False
    if space_break or special:
        plain = single = block = False
    if line_breaks:
        plain = False
    if block_indicators:
        plain = False
    return plain, single, block


def _double_quoted(text: str) -> str:
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\x00":
            out.append("\\0")
        elif not _printable(ch) or o == 0xFEFF:
            if o <= 0xFF:
                out.append(f"\\x{o:02X}")
            elif o <= 0xFFFF:
                out.append(f"\\u{o:04X}")
            else:
                out.append(f"\\U{o:08X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _literal(text: str, indent: int) -> str:
    if text.endswith("\n\n") or text == "\n":
        chomp = "+"
    elif text.endswith("\n"):
        chomp = ""
    else:
        chomp = "-"
    header = "|"
    if text[:1] in (" ", "\n"):
        header += "2"
    header += chomp
    body = text[:-1] if text.endswith("\n") else text
    pad = " " * indent
    lines = [pad + line if line else "" for line in body.split("\n")]
    return header + "\n" + "\n".join(lines)


def _scalar(value: Any, indent: int, key: bool = False) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, RawJSON):
        value = str(value).strip('"')
    if isinstance(value, Float32):
        return value.go_text()
    if isinstance(value, GoTime):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        return format_go_float(value)
    if isinstance(value, int):
        return str(value)
    text = str(value)
    resolved = resolve_plain(text)
    resolves_to_str = isinstance(resolved, str) and not isinstance(resolved, YamlTimestamp) and text != ""
    plain, single, block = _analyze(text)
    if "\n" in text and not key:
        if block:
            return _literal(text, indent)
        return _double_quoted(text)
    if resolves_to_str and not (_BASE60.match(text) or text in _OLD_BOOL) and plain:
        return text
    if not resolves_to_str or _BASE60.match(text) or text in _OLD_BOOL:
        return _double_quoted(text)
    if single:
        return "'" + text.replace("'", "''") + "'"
    return _double_quoted(text)


def _emit(value: Any, indent: int, lines: list[str], prefix: str) -> None:
    """Emit ``value`` whose first line starts with ``prefix`` (already indented)."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            lines.append(prefix + "{}")
            return
        first = True
        for k, v in value.items():
            head = (prefix if first else pad) + _scalar(k, indent, key=True) + ":"
            first = False
            _emit_child(v, indent, lines, head)
        return
    if isinstance(value, (list, tuple)):
        if not value:
            lines.append(prefix + "[]")
            return
        first = True
        for item in value:
            head = (prefix if first else pad) + "- "
            first = False
            _emit(item, indent + 2, lines, head)
        return
    lines.append(prefix + _scalar(value, indent))


def _emit_child(value: Any, indent: int, lines: list[str], head: str) -> None:
    if isinstance(value, (dict, list, tuple)) and value:
        lines.append(head)
        _emit(value, indent + 2, lines, " " * (indent + 2))
    else:
        lines.append("")
        _emit(value, indent + 2, lines, head + " ")
        last = lines.pop()
        lines[-1] = last


def dump_yaml(document: Any) -> str:
    """The YAML text of a document built by :func:`orchestrator.stack.render.encode`."""
    lines: list[str] = []
    _emit(document, 0, lines, "")
    return "\n".join(lines) + "\n"
