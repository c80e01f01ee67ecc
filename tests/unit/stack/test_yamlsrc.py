"""YAML layer: 1.2 scalars, positions, duplicate keys, merge keys, tags, documents, guards."""

from __future__ import annotations

import time

import pytest

from orchestrator.errors import StackError
from orchestrator.stack.yamlsrc import MAX_FILE_BYTES, YamlTimestamp, parse_documents, resolve_plain


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("22:22", "22:22"),
        ("1:2:3", "1:2:3"),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("tRue", "tRue"),
        ("~", None),
        ("null", None),
        ("", None),
        ("42", 42),
        ("-7", -7),
        ("+3", 3),
        ("0x1F", 31),
        ("0o17", 15),
        ("0777", 511),  # Go's base-0 parse keeps the 1.1 octal
        ("08", 8.0),  # not octal, not an int: go-yaml falls back to float
        ("1_000", 1000),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".inf", float("inf")),
        ("1.2.3", "1.2.3"),
        ("0.0.0.0", "0.0.0.0"),
        ("80/tcp", "80/tcp"),
        ("-", "-"),
    ],
)
def test_plain_scalars_resolve_like_yaml_1_2(text: str, value: object) -> None:
    assert resolve_plain(text) == value
    assert type(resolve_plain(text)) is type(value)


def test_unquoted_dates_are_timestamps() -> None:
    stamp = resolve_plain("2023-01-02")
    assert isinstance(stamp, YamlTimestamp)
    assert stamp.go_text() == "2023-01-02T00:00:00Z"
    assert YamlTimestamp("2023-1-2 3:04:05.50").go_text() == "2023-01-02T03:04:05.5Z"
    assert not isinstance(resolve_plain("2023-01-02x"), YamlTimestamp)


def test_quoted_and_tagged_scalars_stay_strings() -> None:
    [doc] = parse_documents("a: '1'\nb: \"true\"\nc: !!str 5\nd: !!int '7'\n", "f.yaml")
    assert doc.value == {"a": "1", "b": "true", "c": "5", "d": 7}


def test_positions_of_every_node() -> None:
    [doc] = parse_documents("services:\n  web:\n    ports:\n      - '80:80'\n", "f.yaml")
    assert doc.positions[("services", "web", "ports", 0)] == (4, 9)
    assert doc.positions[("services", "web")] == (3, 5)


def test_duplicate_key_is_an_error_with_position() -> None:
    with pytest.raises(StackError) as err:
        parse_documents("services:\n  web:\n    image: a\n    image: b\n", "f.yaml")
    [problem] = err.value.problems
    assert (problem.file, problem.line, problem.column) == ("f.yaml", 4, 5)
    assert problem.path == "services.web.image"
    assert "already defined at line 3" in problem.message


def test_repeated_merge_key_is_an_error() -> None:
    text = "a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: *a\n  <<: *b\n"
    with pytest.raises(StackError, match="already defined"):
        parse_documents(text, "f.yaml")


def test_anchors_and_merge_keys() -> None:
    text = "base: &b {x: 1, y: 2}\nother: &o {y: 3, z: 4}\nc:\n  <<: [*b, *o]\n  x: 9\nd: *b\n"
    [doc] = parse_documents(text, "f.yaml")
    # explicit keys win, then the earlier merged mapping
    assert doc.value["c"] == {"x": 9, "y": 2, "z": 4}
    assert doc.value["d"] == {"x": 1, "y": 2}


def test_documents_are_separate() -> None:
    docs = parse_documents("a: 1\n---\nb: 2\n", "f.yaml")
    assert [d.value for d in docs] == [{"a": 1}, {"b": 2}]


def test_reset_drops_the_node_and_records_its_path() -> None:
    [doc] = parse_documents("s:\n  a: !reset null\n  b: !override [1]\n  c: [1, !reset 2, 3]\n", "f.yaml")
    assert doc.value == {"s": {"b": [1], "c": [1, 3]}}
    assert ("s", "a") in doc.reset_paths
    assert ("s", "b") in doc.override_paths


def test_syntax_error_has_position() -> None:
    with pytest.raises(StackError) as err:
        parse_documents("a:\n  b: [\n", "bad.yaml")
    [problem] = err.value.problems
    assert problem.file == "bad.yaml" and problem.line is not None


def test_non_string_key_is_rejected() -> None:
    with pytest.raises(StackError, match="non-string key"):
        parse_documents("services:\n  1: {image: x}\n", "f.yaml")


def test_alias_bomb_fails_fast() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    started = time.monotonic()
    with pytest.raises(StackError, match="excessive aliasing"):
        parse_documents("\n".join(lines) + "\n", "bomb.yaml")
    assert time.monotonic() - started < 5


def test_huge_file_is_refused_before_parsing() -> None:
    started = time.monotonic()
    with pytest.raises(StackError, match="too large"):
        parse_documents("a: " + "x" * (MAX_FILE_BYTES + 1), "big.yaml")
    assert time.monotonic() - started < 1
