"""Durations and byte sizes, parsed with the rules Docker Compose uses.

Compose reads durations with Go's duration grammar extended by ``d`` (24h) and ``w`` (7d)
(``1m30s``, ``1.5h``, ``2d``, ``-5s``; a bare ``0`` is zero, any other bare number is an error),
and byte sizes either as a plain integer (negative allowed, ``-1`` means unlimited for swap) or as
a human size with binary multipliers: a number, an optional space, then ``k``/``m``/``g``/``t``/``p``
optionally followed by ``b`` or ``ib`` (case-insensitive), or a lone ``b``. ``1.5g`` is
1610612736; fractions of a byte are truncated.

Pure functions; ``stack.bind`` calls them and turns their ``ValueError`` into a ``StackError``
carrying the dotted path. The model stores durations as float seconds and sizes as int bytes.
"""

from __future__ import annotations

import re

NANOSECONDS_PER_SECOND = 1_000_000_000

_DURATION_UNITS_NS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": NANOSECONDS_PER_SECOND,
    "m": 60 * NANOSECONDS_PER_SECOND,
    "h": 3600 * NANOSECONDS_PER_SECOND,
    "d": 86400 * NANOSECONDS_PER_SECOND,
    "w": 7 * 86400 * NANOSECONDS_PER_SECOND,
}
# One element: digits, an optional fraction, then a unit (everything up to the next digit or dot).
_DURATION_ELEMENT = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_INT64_MAX = (1 << 63) - 1

_SIZE_MULTIPLIERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_PLAIN_INT = re.compile(r"[+-]?[0-9]+")
_DECIMAL_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_duration_ns(value: object) -> int:
    """Nanoseconds in a Compose duration (``"1m30s"`` → 90_000_000_000). Raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f'invalid duration {value!r}: expected a string such as "10s"')
    text = value if isinstance(value, str) else _go_number_text(value)
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if rest == "":
        raise ValueError(f'invalid duration "{text}"')
    total = 0
    while rest:
        match = _DURATION_ELEMENT.match(rest)
        assert match is not None  # the pattern matches the empty string
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not fraction:
            raise ValueError(f'invalid duration "{text}"')
        if not unit:
            raise ValueError(f'invalid duration "{text}": missing unit (e.g. "{text}s")')
        if unit not in _DURATION_UNITS_NS:
            raise ValueError(f'invalid duration "{text}": unknown unit "{unit}"')
        scale = _DURATION_UNITS_NS[unit]
        amount = int(whole or "0") * scale
        if fraction:
            amount += int(int(fraction) * (scale / 10 ** len(fraction)))
        total += amount
        if total > _INT64_MAX:
            raise ValueError(f'invalid duration "{text}": out of range')
        rest = rest[match.end() :]
    return -total if negative else total


def parse_duration(value: object) -> float:
    """Seconds in a Compose duration (``"1m30s"`` → 90.0, ``"500ms"`` → 0.5). Raises ValueError."""
    return parse_duration_ns(value) / NANOSECONDS_PER_SECOND


def format_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` of ``seconds``: ``90.0`` → ``"1m30s"``, ``0.5`` → ``"500ms"``."""
    ns = round(seconds * NANOSECONDS_PER_SECOND)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < NANOSECONDS_PER_SECOND:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim_fraction(ns, size) + unit
    hours, rem = divmod(ns, 3600 * NANOSECONDS_PER_SECOND)
    minutes, rem = divmod(rem, 60 * NANOSECONDS_PER_SECOND)
    text = _trim_fraction(rem, NANOSECONDS_PER_SECOND) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _trim_fraction(amount: int, unit: int) -> str:
    whole, fraction = divmod(amount, unit)
    if not fraction:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{fraction:0{digits}d}".rstrip("0")


def parse_bytes(value: object) -> int:
    """Bytes in a Compose size (``"64m"`` → 67108864, ``"-1"`` → -1, ``1024`` → 1024). Raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f'invalid size {value!r}: expected a number of bytes or a string such as "64m"')
    if isinstance(value, int):
        return value
    text = value if isinstance(value, str) else _go_number_text(value)
    if _PLAIN_INT.fullmatch(text):
        return int(text)
    number, space, suffix = text.partition(" ")
    if not space:
        cut = max(text.rfind(ch) for ch in "0123456789.")
        if cut < 0:
            raise ValueError(f"invalid size '{text}'")
        number, suffix = text[: cut + 1], text[cut + 1 :]
    if not _DECIMAL_FLOAT.fullmatch(number):
        raise ValueError(f"invalid size '{text}'")
    size = float(number)
    if size < 0:
        raise ValueError(f"invalid size '{text}': sizes cannot be negative")
    if not suffix:
        return int(size)
    lowered = suffix.lower()
    if len(lowered) > 3:
        raise ValueError(f"invalid size '{text}': unknown suffix '{suffix}'")
    if lowered == "b":
        return int(size)
    multiplier = _SIZE_MULTIPLIERS.get(lowered[0])
    if (
        multiplier is None
        or (len(lowered) == 2 and lowered[1] != "b")
        or (len(lowered) == 3 and lowered[1:] != "ib")
    ):
        raise ValueError(f"invalid size '{text}': unknown suffix '{suffix}'")
    return int(size * multiplier)


def _go_number_text(value: int | float) -> str:
    # What Go's fmt.Sprint prints for a YAML number, which is what Compose then parses.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
