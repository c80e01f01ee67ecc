"""PURE. Short-syntax parsers: ports (``[ip:][host[-range]:]container[-range][/proto]``), volumes
(``[source:]target[:options]``) and devices (``source[:target[:perms]]``).

Owns the exact splitting rules Docker Compose uses (go-connections' ``nat.ParsePortSpec`` and
compose-go's ``format.ParseVolume``), returning long-syntax dicts. Called by
:mod:`orchestrator.stack.canonical` and by the list de-duplication in :mod:`orchestrator.stack.merge`.
"""

from __future__ import annotations

import ipaddress
from typing import Any


class FormatError(ValueError):
    """A short-syntax string that Compose rejects; the message is Compose's wording."""


def _parse_port_range(text: str) -> tuple[int, int]:
    if text == "":
        raise FormatError("Empty string specified for ports.")
    if "-" not in text:
        value = _parse_uint16(text)
        return value, value
    start_text, end_text = text.split("-", 1)
    start, end = _parse_uint16(start_text), _parse_uint16(end_text)
    if end < start:
        raise FormatError(f"Invalid range specified for the Port: {text}")
    return start, end


def _parse_uint16(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise FormatError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > 65535:
        raise FormatError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def _split_proto(text: str) -> tuple[str, str]:
    port, _, proto = text.partition("/")
    if port == "":
        return "", ""
    return proto or "tcp", port


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_port(spec: str) -> list[dict[str, Any]]:
    """One short port spec → long-syntax port dicts (one per port of a range), Compose's order."""
    parts = spec.split(":")
    n = len(parts)
    container = parts[-1]
    if n == 1:
        ip, host = "", ""
    elif n == 2:
        ip, host = "", parts[0]
    elif n == 3:
        ip, host = parts[0], parts[1]
    else:
        ip, host = ":".join(parts[: n - 2]), parts[n - 2]
    # the checks run in go-connections' order, with its wording
    proto, container = _split_proto(container)
    proto = proto.lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise FormatError(f"invalid proto: {proto}")
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise FormatError(f"invalid IP address {ip}: address {ip}:: missing ']' in address")
        ip = ip[1:-1]
    if ip and not _valid_ip(ip):
        raise FormatError(f"invalid IP address: {ip}")
    if container == "":
        raise FormatError(f"no port specified: {spec}<empty>")
    try:
        start, end = _parse_port_range(container)
    except FormatError:
        raise FormatError(f"invalid containerPort: {container}") from None
    host_start = host_end = 0
    if host:
        try:
            host_start, host_end = _parse_port_range(host)
        except FormatError:
            raise FormatError(f"invalid hostPort: {host}") from None
    if host and (end - start) != (host_end - host_start) and end != start:
        raise FormatError(f"invalid ranges specified for container and host Ports: {container} and {host}")
    result: list[tuple[str, dict[str, Any]]] = []
    for i in range(end - start + 1):
        published = host
        if host:
            published = str(host_start + i)
        if start == end and host_start != host_end:
            published = f"{published}-{host_end}"
        port: dict[str, Any] = {"mode": "ingress"}
        if ip:
            port["host_ip"] = ip
        port["target"] = start + i
        if published:
            port["published"] = published
        port["protocol"] = proto
        result.append((f"{start + i}/{proto}", port))
    # compose-go sorts the "port/proto" keys as strings
    result.sort(key=lambda item: item[0])
    return [p for _, p in result]


# --- volumes --------------------------------------------------------------------------------------

_PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")


def _is_windows_drive(buffer: str, char: str) -> bool:
    return char == ":" and len(buffer) == 1 and buffer.isalpha()


def _is_file_path(source: str) -> bool:
    if not source:
        return False
    if source[0] in "./~":
        return True
    if source.startswith("\\\\"):
        return True
    return len(source) > 1 and _is_windows_drive(source[0], source[1])


def parse_volume(spec: str) -> dict[str, Any]:
    """One short volume spec → a long-syntax volume dict (``type``, ``source``, ``target``, ...)."""
    volume: dict[str, Any] = {}
    if len(spec) == 0:
        raise FormatError("invalid empty volume spec")
    if len(spec) <= 2:
        return {"type": "volume", "target": spec, "volume": {}}
    source = target = ""
    read_only = False
    bind: dict[str, Any] | None = None
    nocopy = False
    buffer = ""
    depth = 0
    end_marker = "\x00"
    text = spec + end_marker
    for i, char in enumerate(text):
        if char == "$" and i + 1 < len(spec) and spec[i + 1] == "{":
            depth += 1
            buffer += char
            continue
        if char == "}" and depth > 0:
            depth -= 1
            buffer += char
            continue
        if _is_windows_drive(buffer, char):
            buffer += char
        elif char in (":", end_marker) and depth == 0:
            if not buffer:
                raise FormatError(f"invalid spec: {spec}: empty section between colons")
            if source == "" and char == end_marker:
                target = buffer
            elif source == "":
                source = buffer
            elif target == "":
                target = buffer
            elif char == ":":
                raise FormatError(f"invalid spec: {spec}: too many colons")
            else:
                for option in buffer.split(","):
                    if option == "ro":
                        read_only = True
                    elif option == "rw":
                        read_only = False
                    elif option == "nocopy":
                        nocopy = True
                    elif option in _PROPAGATIONS:
                        bind = bind or {}
                        bind["propagation"] = option
                    elif option in ("z", "Z"):
                        bind = bind or {}
                        bind["selinux"] = option
            buffer = ""
        else:
            buffer += char
    if _is_file_path(source):
        volume["type"] = "bind"
    else:
        volume["type"] = "volume"
    if source:
        volume["source"] = source
    volume["target"] = target
    if read_only:
        volume["read_only"] = True
    if volume["type"] == "bind":
        bind = bind or {}
        bind["create_host_path"] = True
        volume["bind"] = bind
    else:
        if bind is not None:
            volume["bind"] = bind
        volume["volume"] = {"nocopy": True} if nocopy else {}
    return volume


def parse_device(spec: str) -> dict[str, Any]:
    """``/dev/x[:/dev/y[:rwm]]`` → ``{source, target, permissions}``."""
    parts = spec.split(":")
    permissions = "rwm"
    if len(parts) > 3:
        raise FormatError(f"confusing device mapping, please use long syntax: {spec}")
    source = parts[0]
    target = parts[1] if len(parts) > 1 else ""
    if len(parts) == 3:
        permissions = parts[2]
    return {"source": source, "target": target or source, "permissions": permissions}
