"""The control protocol between the CLI and a project's supervisor: JSON lines over a Unix socket.

Owned here: the version, the framing and the shapes. A client sends one request line
``{"v": 1, "op": "...", ...}``; the supervisor answers with zero or more ``{"v": 1, "event": {...}}``
lines (progress, or the stream of ``events``) and ends with exactly one
``{"v": 1, "ok": true, "result": {...}}`` or ``{"v": 1, "ok": false, "error": "...", "exit_code": N}``.
A request with another major version is refused with an error naming both. Used by
``daemon.supervisor`` (server) and ``daemon.client``.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.daemon.spawn import SOCKET_NAME as SOCKET_NAME
from orchestrator.daemon.spawn import socket_path as socket_path
from orchestrator.errors import PermanentError

VERSION = 1
MAX_LINE = 16 * 1024 * 1024


class ProtocolError(PermanentError):
    """The other side spoke something that is not this protocol (or another version of it)."""


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps({"v": VERSION, **message}, separators=(",", ":"), default=str) + "\n").encode()


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"control socket: not a JSON line: {line[:80]!r}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("control socket: a message must be a JSON object")
    version = message.get("v")
    if version != VERSION:
        raise ProtocolError(f"control socket: protocol version {version!r}, this orc speaks {VERSION}")
    return message


def ok(result: dict[str, Any] | None = None) -> bytes:
    return encode({"ok": True, "result": result or {}})


def error(message: str, exit_code: int = 1) -> bytes:
    return encode({"ok": False, "error": message, "exit_code": exit_code})


def event(payload: dict[str, Any]) -> bytes:
    return encode({"event": payload})
