"""RFC 3339 timestamps written and read without datetime, checked against datetime itself."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from orchestrator.timestamps import epoch_seconds, format_micros, format_nanos, parse_nanos


def _datetime_micros(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_microseconds_are_rounded_as_datetime_rounds_them() -> None:
    rng = random.Random(7)
    edges = [0.0, -0.5, 1.0000005, 1.0000015, 1.9999996, 1700000000.9999995, -1.0000005, 951782400.25]
    samples = edges + [rng.uniform(-2e9, 5e9) for _ in range(20000)]
    for seconds in samples:
        assert format_micros(seconds) == _datetime_micros(seconds), seconds


def test_nanoseconds_round_trip_and_match_datetime() -> None:
    rng = random.Random(11)
    for _ in range(20000):
        time_ns = rng.randint(-(2**55), 2**62 // 1000)
        whole, nanos = divmod(time_ns, 1_000_000_000)
        expected = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
        assert format_nanos(time_ns) == expected
        assert parse_nanos(expected) == time_ns


def test_calendar_arithmetic_matches_datetime_across_leap_years() -> None:
    day = datetime(1600, 1, 1, tzinfo=UTC)
    while day.year < 2500:
        assert epoch_seconds(day.year, day.month, day.day, 13, 14, 15) == int(day.timestamp()) + 47655
        day += timedelta(days=17)


def test_offsets_and_short_fractions() -> None:
    base = parse_nanos("2025-11-24T16:00:00Z")
    assert parse_nanos("2025-11-24T17:30:00+01:30") == base
    assert parse_nanos("2025-11-24T14:00:00-02:00") == base
    assert parse_nanos("2025-11-24T16:00:00.5Z") == base + 500_000_000
    zone = timezone(timedelta(hours=-3, minutes=-15))
    assert (
        parse_nanos("2025-11-24T12:45:00.000000001-03:15")
        == int(datetime(2025, 11, 24, 12, 45, tzinfo=zone).timestamp()) * 1_000_000_000 + 1
    )


@pytest.mark.parametrize(
    "text",
    [
        "2025-11-24 16:00:00Z",
        "2025-11-24T16:00:00",
        "2025-02-29T00:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-04-31T00:00:00Z",
        "2025-01-01T24:00:00Z",
        "2025-01-01T00:60:00Z",
        "2025-01-01T00:00:60Z",
        "2025-01-01T00:00:00.1234567890Z",
        "yesterday",
    ],
)
def test_what_is_not_rfc3339_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        parse_nanos(text)


def test_leap_day_of_a_leap_year_is_accepted() -> None:
    assert parse_nanos("2024-02-29T00:00:00Z") == int(datetime(2024, 2, 29, tzinfo=UTC).timestamp()) * 10**9
