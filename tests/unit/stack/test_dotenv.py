"""``.env`` syntax as Docker Compose reads it."""

from __future__ import annotations

import pytest

from orchestrator.stack.dotenv import DotEnvError, parse_dotenv


def test_forms() -> None:
    text = (
        "# comment\n"
        "A=1\n"
        "export B=two\n"
        "C = spaced \n"
        "D='single $A'\n"
        'E="double ${A}\\n\\t"\n'
        "F=unquoted # trailing comment\n"
        "G=#not-a-comment\n"
        "H: colon\n"
        "I=\n"
        'J="multi\nline"\n'
        "K=$A-${UNSET:-dflt}\n"
        'L="esc \\$A"\n'
    )
    assert parse_dotenv(text) == {
        "A": "1",
        "B": "two",
        "C": "spaced",
        "D": "single $A",
        "E": "double 1\n\t",
        "F": "unquoted",
        "G": "#not-a-comment",
        "H": "colon",
        "I": "",
        "J": "multi\nline",
        "K": "1-dflt",
        "L": "esc $A",
    }


def test_lookup_beats_earlier_lines_and_bare_keys_inherit() -> None:
    env = {"A": "outer", "INHERIT": "yes"}
    assert parse_dotenv("A=inner\nB=${A}\nINHERIT\nMISSING\n", env.get) == {
        "A": "inner",
        "B": "outer",
        "INHERIT": "yes",
    }


def test_crlf_line_endings() -> None:
    assert parse_dotenv("A=1\r\nB=2\r\n") == {"A": "1", "B": "2"}


@pytest.mark.parametrize("text", ["A B=1\n", 'A="unterminated\n', "A$=1\n"])
def test_errors(text: str) -> None:
    with pytest.raises(DotEnvError, match="line"):
        parse_dotenv(text)
