"""Compose durations and byte sizes (orchestrator.model.units) against the rules of go-units and
go-str2duration that Docker Compose uses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.model.units import format_duration, parse_bytes, parse_duration, parse_duration_ns

S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("-0", 0),
        ("10s", 10 * S),
        ("1m30s", 90 * S),
        ("1h0m0s", 3600 * S),
        ("2h45m", (2 * 3600 + 45 * 60) * S),
        ("1.5h", 5400 * S),
        ("-1.5h", -5400 * S),
        ("+5s", 5 * S),
        ("300ms", 300_000_000),
        (".5s", S // 2),
        ("5.s", 5 * S),
        ("1.5s", 1_500_000_000),
        ("1us", 1_000),
        ("1µs", 1_000),
        ("1μs", 1_000),
        ("7ns", 7),
        ("1d", 86400 * S),
        ("1w", 7 * 86400 * S),
        ("1w2d3h", (9 * 86400 + 3 * 3600) * S),
        ("1s500ms", 1_500_000_000),
        (0, 0),
    ],
)
def test_durations_parse_like_str2duration(text: object, nanoseconds: int) -> None:
    assert parse_duration_ns(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "invalid duration"),
        ("10", "missing unit"),
        (10, "missing unit"),
        ("1x", 'unknown unit "x"'),
        ("1sec", 'unknown unit "sec"'),
        (".s", "invalid duration"),
        ("s", "invalid duration"),
        ("1.2.3s", "missing unit"),
        ("-", "invalid duration"),
        ("10 s", 'unknown unit " s"'),
        (True, "expected a string"),
        (None, "expected a string"),
        ("100000000000000000000s", "out of range"),
    ],
)
def test_bad_durations_say_why(text: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_duration_ns(text)


def test_seconds_are_floats() -> None:
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("500ms") == 0.5


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (90, "1m30s"),
        (120, "2m0s"),
        (3600, "1h0m0s"),
        (1.5, "1.5s"),
        (0.5, "500ms"),
        (0.0015, "1.5ms"),
        (0.000001, "1µs"),
        (-90, "-1m30s"),
        (93784.5, "26h3m4.5s"),
    ],
)
def test_format_duration_prints_like_go(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_format_then_parse_round_trips(nanoseconds: int) -> None:
    assert parse_duration_ns(format_duration(nanoseconds / S)) == pytest.approx(nanoseconds, abs=1_000)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1024, 1024),
        ("1024", 1024),
        ("-1", -1),
        ("+5", 5),
        ("0", 0),
        ("64m", 64 << 20),
        ("64M", 64 << 20),
        ("64mb", 64 << 20),
        ("64MiB", 64 << 20),
        ("1g", 1 << 30),
        ("1.5g", 1610612736),
        ("1 g", 1 << 30),
        ("1 GB", 1 << 30),
        ("10k", 10240),
        ("2t", 2 << 40),
        ("1p", 1 << 50),
        ("12b", 12),
        ("12B", 12),
        ("0.5k", 512),
        ("1.9", 1),
        ("1e3", 1000),
        ("1e3k", 1024000),
        (2.0, 2),
    ],
)
def test_sizes_parse_like_go_units(value: object, size: int) -> None:
    assert parse_bytes(value) == size


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("m", "invalid size"),
        ("", "invalid size"),
        ("1x", "unknown suffix"),
        ("1kx", "unknown suffix"),
        ("1kibx", "unknown suffix"),
        ("1kbb", "unknown suffix"),
        ("1bb", "unknown suffix"),
        ("1mi", "unknown suffix"),
        ("-1m", "negative"),
        ("1.2.3m", "invalid size"),
        ("1_000", "invalid size"),
        (True, "expected a number"),
        ([1], "expected a number"),
    ],
)
def test_bad_sizes_say_why(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_bytes(value)


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from([("k", 10), ("m", 20), ("g", 30), ("t", 40)]),
    st.sampled_from(["", "b", "ib", "B", "iB"]),
    st.booleans(),
)
def test_integer_sizes_with_any_suffix_spelling(
    number: int, unit: tuple[str, int], tail: str, upper: bool
) -> None:
    letter, shift = unit
    text = f"{number}{letter.upper() if upper else letter}{tail}"
    assert parse_bytes(text) == number << shift
