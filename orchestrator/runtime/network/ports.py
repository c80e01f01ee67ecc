"""Published ports, pure: Compose's port syntaxes to ``PortSpec``, bind plans, ``orc port`` lookup.

``parse_port`` accepts the short syntax Compose accepts (``"80"``, ``"3000-3005"``,
``"8080:80"``, ``"9090-9091:8080-8081"``, ``"127.0.0.1::5000"``, ``"[::1]:6000:6000/udp"``,
``"12400-12500:1240"``) and gives the canonical long form, one entry per target port, like
``docker compose config``. ``bind_plan`` turns one spec into the (host address, port candidates)
the proxy tries; ``lookup_port`` answers ``orc port SERVICE PORT``. Used by the proxy and the CLI.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from orchestrator.errors import NotFoundError, PermanentError

from .spec import PortBinding, PortSpec, Transport

_PROTOCOLS = ("tcp", "udp")


def _port_number(text: str, what: str, original: str) -> int:
    try:
        n = int(text)
    except ValueError as exc:
        raise PermanentError(f"invalid port {original!r}: {what} {text!r} is not a number") from exc
    if not 0 < n < 65536:
        raise PermanentError(f"invalid port {original!r}: {what} {n} is out of range 1-65535")
    return n


def _port_range(text: str, what: str, original: str) -> tuple[int, int]:
    if "-" in text:
        lo_text, _, hi_text = text.partition("-")
        lo = _port_number(lo_text, what, original)
        hi = _port_number(hi_text, what, original)
        if hi < lo:
            raise PermanentError(f"invalid port {original!r}: {what} range {text} ends before it starts")
        return lo, hi
    n = _port_number(text, what, original)
    return n, n


def _split_host_ip(text: str, original: str) -> tuple[str | None, str]:
    """Split ``[v6]:rest`` / ``v4:rest`` / bare v6 into (host_ip, rest)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise PermanentError(f"invalid port {original!r}: bad IPv6 address brackets")
        return _check_ip(text[1:end], original), text[end + 2 :]
    parts = text.split(":")
    if len(parts) <= 2:
        return None, text
    if len(parts) == 3:
        return _check_ip(parts[0], original), ":".join(parts[1:])
    # an unbracketed IPv6 address: the last two fields are published:target
    return _check_ip(":".join(parts[:-2]), original), ":".join(parts[-2:])


def _check_ip(text: str, original: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise PermanentError(f"invalid port {original!r}: {text!r} is not an IP address") from exc


def parse_port(short: str | int) -> list[PortSpec]:
    """Compose's short port syntax to canonical long-form specs (one per target port)."""
    original = str(short)
    text = original.strip()
    protocol: str = "tcp"
    if "/" in text:
        text, _, protocol = text.rpartition("/")
        protocol = protocol.lower()
        if protocol not in _PROTOCOLS:
            raise PermanentError(f"invalid port {original!r}: protocol {protocol!r} is not tcp or udp")
    host_ip, rest = _split_host_ip(text, original)
    published_text: str | None
    if ":" in rest:
        published_text, _, target_text = rest.partition(":")
        published_text = published_text or None
    else:
        published_text, target_text = None, rest
    t_lo, t_hi = _port_range(target_text, "container port", original)
    proto = cast(Transport, protocol)
    if published_text is None:
        return [PortSpec(t, None, host_ip, proto) for t in range(t_lo, t_hi + 1)]
    p_lo, p_hi = _port_range(published_text, "host port", original)
    if t_lo == t_hi:
        published = str(p_lo) if p_lo == p_hi else f"{p_lo}-{p_hi}"
        return [PortSpec(t_lo, published, host_ip, proto)]
    if p_hi - p_lo != t_hi - t_lo:
        raise PermanentError(
            f"invalid port {original!r}: host range {published_text} and container range "
            f"{target_text} differ in length"
        )
    return [PortSpec(t, str(p_lo + i), host_ip, proto) for i, t in enumerate(range(t_lo, t_hi + 1))]


def port_from_long(entry: dict[str, Any]) -> PortSpec:
    """A canonical long-form mapping (``target``, ``published``, ``host_ip``, ``protocol``)."""
    target = _port_number(str(entry["target"]), "container port", str(entry))
    published = entry.get("published")
    if published in (None, "", 0, "0"):
        pub: str | None = None
    else:
        lo, hi = _port_range(str(published), "host port", str(entry))
        pub = str(lo) if lo == hi else f"{lo}-{hi}"
    host_ip = entry.get("host_ip") or None
    protocol = str(entry.get("protocol") or "tcp").lower()
    if protocol not in _PROTOCOLS:
        raise PermanentError(f"invalid port {entry!r}: protocol {protocol!r} is not tcp or udp")
    return PortSpec(
        target, pub, _check_ip(host_ip, str(entry)) if host_ip else None, cast(Transport, protocol)
    )


@dataclass(frozen=True)
class BindPlan:
    """Where to listen for one spec: addresses (all bound to one port number) and the port
    numbers to try in order (``0`` = let the kernel pick)."""

    addresses: tuple[str, ...]
    ports: tuple[int, ...]


def bind_plan(spec: PortSpec, ipv6: bool = True) -> BindPlan:
    """Docker's defaults: no host_ip means 0.0.0.0 and, when the host has IPv6, ``::``."""
    if spec.host_ip is None:
        addresses: tuple[str, ...] = ("0.0.0.0", "::") if ipv6 else ("0.0.0.0",)
    else:
        addresses = (spec.host_ip,)
    if spec.published is None:
        return BindPlan(addresses, (0,))
    lo, hi = _port_range(spec.published, "host port", spec.published)
    return BindPlan(addresses, tuple(range(lo, hi + 1)))


def lookup_port(
    bindings: Sequence[PortBinding], target: int, protocol: Transport = "tcp", container: str | None = None
) -> list[str]:
    """``orc port``: the host addresses publishing ``target/protocol`` (of ``container`` when given)."""
    found = [
        str(b)
        for b in bindings
        if b.target == target and b.protocol == protocol and (container is None or b.container == container)
    ]
    if not found:
        raise NotFoundError(f"no public port {target}/{protocol} published")
    return found
