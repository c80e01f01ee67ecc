"""RFC 3339 timestamps in UTC, written and read without ``datetime``.

Used by ``state.logs`` (log lines carry nanosecond times, as Docker's JSON log files do) and
``reconciler.events`` (events carry microsecond times, as ``docker compose events --json``
prints them); both run in the supervisor, where ``datetime`` (~0.45 MiB resident) was loaded only
for these strings. :func:`epoch_seconds` does the calendar arithmetic by days since 1970-01-01
(the proleptic Gregorian calendar, as ``datetime``'s).
"""

from __future__ import annotations

import math
import re
import time

_RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d\d):(\d\d))$"
)


def format_nanos(time_ns: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` for nanoseconds since the epoch."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def format_micros(seconds: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` for seconds since the epoch, rounded to the microsecond
    the way ``datetime.fromtimestamp`` rounds (half to even)."""
    fraction, whole = math.modf(seconds)
    micros = round(fraction * 1e6)
    whole_seconds = int(whole)
    if micros >= 1_000_000:
        whole_seconds, micros = whole_seconds + 1, micros - 1_000_000
    elif micros < 0:
        whole_seconds, micros = whole_seconds - 1, micros + 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole_seconds)) + f".{micros:06d}Z"


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to the given date."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def epoch_seconds(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Seconds since the epoch of a UTC date and time."""
    return _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second


def parse_nanos(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time: the inverse of :func:`format_nanos`,
    also with fewer fraction digits and with a numeric offset (``+01:00``)."""
    match = _RFC3339.match(text)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if (
        not (1 <= month <= 12 and 1 <= day <= _month_length(year, month))
        or hour > 23
        or minute > 59
        or second > 59
    ):
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    whole = epoch_seconds(year, month, day, hour, minute, second)
    if match.group(9):
        offset = int(match.group(10)) * 3600 + int(match.group(11)) * 60
        whole -= offset if match.group(9) == "+" else -offset
    return whole * 1_000_000_000 + int((match.group(7) or "0").ljust(9, "0"))


def _month_length(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31
