"""Interpolation: every operator, nesting, escapes, errors, warnings, casts, values-only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import StackError
from orchestrator.stack.interpolate import (
    InvalidTemplate,
    MissingRequired,
    interpolate_document,
    substitute,
    unset_warning,
)

ENV = {"SET": "s", "EMPTY": "", "NUM": "42"}


def lookup(key: str) -> str | None:
    return ENV.get(key)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$SET", "s"),
        ("${SET}", "s"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${SET:+r}", "r"),
        ("${EMPTY:+r}", ""),
        ("${EMPTY+r}", "r"),
        ("${UNSET+r}", ""),
        ("${SET:?e}", "s"),
        ("${EMPTY?e}", ""),
        ("${UNSET:-${SET}-x}", "s-x"),
        ("${UNSET:-${ALSO:-deep}}", "deep"),
        ("$$SET", "$SET"),
        ("$$", "$"),
        ("a${SET}b$SET.c", "asbs.c"),
        ("${SET}}", "s}"),
        ("no dollars", "no dollars"),
        ("${set}", ""),
        ("$}", "$}"),  # no substitution starts here: left alone, as compose-go does
        ("${bad-}x}", "x}"),
        ("$1", "$1"),
    ],
)
def test_operators(template: str, expected: str) -> None:
    assert substitute(template, lookup) == expected


def test_unset_variables_warn_with_compose_wording() -> None:
    warnings: list[str] = []
    assert substitute("${A}-$B", lookup, warnings.append) == "-"
    assert warnings == [unset_warning("A"), unset_warning("B")]
    assert warnings[0] == 'The "A" variable is not set. Defaulting to a blank string.'


def test_defaults_do_not_warn() -> None:
    warnings: list[str] = []
    substitute("${A:-x}${B-y}${C:+z}", lookup, warnings.append)
    assert warnings == []


@pytest.mark.parametrize(
    ("template", "reason"), [("${UNSET:?need it}", "need it"), ("${EMPTY:?}", ""), ("${UNSET?x}", "x")]
)
def test_required(template: str, reason: str) -> None:
    with pytest.raises(MissingRequired) as err:
        substitute(template, lookup)
    assert err.value.reason == reason


@pytest.mark.parametrize("template", ["${", "${}", "${1abc}", "a ${ b"])
def test_invalid_templates(template: str) -> None:
    with pytest.raises(InvalidTemplate):
        substitute(template, lookup)


def test_document_values_only_and_casts() -> None:
    doc = {
        "services": {
            "web": {
                "image": "${SET}",
                "labels": {"${SET}": "${NUM}"},
                "privileged": "${T}",
                "tty": "yes",
                "cpus": "0.5",
                "ports": [{"target": "${NUM}"}],
                "environment": ["A=${NUM}"],
            }
        },
        "networks": {"n": {"external": "false"}},
    }
    warnings: list[str] = []
    out = interpolate_document(doc, lambda k: {"T": "true", **ENV}.get(k), warn=warnings.append)
    web = out["services"]["web"]
    assert web["labels"] == {"${SET}": "42"}
    assert web["privileged"] is True
    assert web["tty"] is True and any("YAML 1.2" in w for w in warnings)
    assert web["cpus"] == 0.5
    assert web["ports"][0]["target"] == 42
    assert web["environment"] == ["A=42"]
    assert out["networks"]["n"]["external"] is False


def test_failed_cast_names_the_path() -> None:
    with pytest.raises(StackError) as err:
        interpolate_document({"services": {"web": {"privileged": "maybe"}}}, lookup, filename="c.yaml")
    [problem] = err.value.problems
    assert problem.path == "services.web.privileged"
    assert problem.file == "c.yaml"


# --- property: agreement with a reference model ----------------------------------------------------

NAMES = st.sampled_from(["SET", "EMPTY", "UNSET", "NUM", "_x1"])
LITERAL = st.text(alphabet="abc XYZ-./:{}=", max_size=6)
DEFAULT_TEXT = st.text(alphabet="abc -./:=", max_size=5)
REF_ENV = {"SET": "s", "EMPTY": "", "NUM": "42", "_x1": "v"}


@st.composite
def pieces(draw: st.DrawFn) -> list[tuple[str, str]]:
    """(template fragment, expected value) pairs that concatenate without interfering."""
    out: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["lit", "named", "braced", "op", "escape"]))
        name = draw(NAMES)
        value = REF_ENV.get(name)
        if kind == "lit":
            text = draw(LITERAL)
            out.append((text, text))
        elif kind == "named":
            # a following word character would extend the name: keep a separator
            out.append((f"${name}/", (value or "") + "/"))
        elif kind == "braced":
            out.append((f"${{{name}}}", value or ""))
        elif kind == "escape":
            out.append(("$$", "$"))
        else:
            op = draw(st.sampled_from([":-", "-", ":+", "+"]))
            arg = draw(DEFAULT_TEXT)
            if op == ":-":
                expected = value or arg
            elif op == "-":
                expected = arg if value is None else value
            elif op == ":+":
                expected = arg if value else (value or "")
            else:
                expected = arg if value is not None else ""
            out.append((f"${{{name}{op}{arg}}}", expected))
    return out


@given(pieces())
def test_substitution_agrees_with_reference_model(parts: list[tuple[str, str]]) -> None:
    template = "".join(t for t, _ in parts)
    expected = "".join(v for _, v in parts)
    assert substitute(template, REF_ENV.get) == expected


@given(st.text(alphabet="abcXYZ -_./:{}=#", max_size=30))
def test_text_without_dollar_is_unchanged(text: str) -> None:
    assert substitute(text, REF_ENV.get) == text


@given(st.text(alphabet="ab$ {}-:", max_size=20))
def test_escaped_dollars_come_back_single(text: str) -> None:
    assert substitute(text.replace("$", "$$"), REF_ENV.get) == text
