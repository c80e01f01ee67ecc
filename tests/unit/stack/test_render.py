"""Go-compatible value formatting: durations, sizes, floats, JSON escaping, YAML scalar styles."""

from __future__ import annotations

import pytest

from orchestrator.stack import render
from orchestrator.stack.yamlout import dump_yaml


@pytest.mark.parametrize(
    ("text", "formatted"),
    [
        ("5s", "5s"),
        ("90s", "1m30s"),
        ("1m30s", "1m30s"),
        ("1h", "1h0m0s"),
        ("1.5s", "1.5s"),
        ("500ms", "500ms"),
        ("1d", "24h0m0s"),
        ("1w", "168h0m0s"),
        ("0", "0s"),
        ("2us", "2µs"),
        ("1h2m3.004s", "1h2m3.004s"),
    ],
)
def test_durations(text: str, formatted: str) -> None:
    assert render.format_duration(render.parse_duration(text)) == formatted


@pytest.mark.parametrize("text", ["5", "x", "5 s", "5q"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        render.parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"), [("1g", 1 << 30), ("512m", 512 << 20), ("64MB", 64 << 20), ("1.5k", 1536), ("100", 100)]
)
def test_ram_sizes(text: str, size: int) -> None:
    assert render.parse_ram_bytes(text) == size


def test_go_json_escaping_and_layout() -> None:
    text = render.to_json({"a": "x && y <z>", "b": [], "c": {}, "d": [1, None, True]})
    assert text == (
        '{\n  "a": "x \\u0026\\u0026 y \\u003cz\\u003e",\n  "b": [],\n  "c": {},\n'
        '  "d": [\n    1,\n    null,\n    true\n  ]\n}'
    )


def test_float32_prints_shortest_digits() -> None:
    assert render.to_json(render.Float32(render._float32(0.1))) == "0.1"
    assert render.to_json(render.Float32(render._float32(1.5))) == "1.5"
    assert render.to_json(render.Float32(2.0)) == "2"


def test_service_record_field_order_and_nulls() -> None:
    record = render.decode(
        {"image": "x", "environment": ["B=2", "A"], "command": "echo 'a b'", "tmpfs": "/t"},
        "Service",
        "services.s",
    )
    encoded = render.encode(record, "Service", yaml_mode=False)
    assert list(encoded) == ["command", "entrypoint", "environment", "image", "tmpfs"]
    assert encoded["command"] == ["echo", "a b"]
    assert encoded["entrypoint"] is None
    assert encoded["environment"] == {"A": None, "B": "2"}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("8080", '"8080"'),
        ("yes", '"yes"'),
        ("22:22", '"22:22"'),
        ("", '""'),
        ("*.example.com", "'*.example.com'"),
        ("a: b", "'a: b'"),
        ("- x", "'- x'"),
        ("has 'quote'", "has 'quote'"),
        ("null", '"null"'),
        ("tab\there", '"tab\\there"'),
        ("2023-01-01", '"2023-01-01"'),
        ("caf\u00e9", "caf\u00e9"),
    ],
)
def test_yaml_scalar_styles(value: str, text: str) -> None:
    assert dump_yaml({"k": value}) == f"k: {text}\n"


def test_yaml_layout() -> None:
    assert dump_yaml({"a": {"b": [1, {"c": "d", "e": []}], "f": {}}}) == (
        "a:\n  b:\n    - 1\n    - c: d\n      e: []\n  f: {}\n"
    )
    assert dump_yaml({"m": "line1\nline2"}) == "m: |-\n  line1\n  line2\n"


def test_go_yaml_map_key_order() -> None:
    # a non-letter sorts before a letter (as go-yaml does), digit runs compare as numbers
    assert render.yaml_sorted(["b", "a10", "a9", "_x", "A"]) == ["_x", "A", "a9", "a10", "b"]
