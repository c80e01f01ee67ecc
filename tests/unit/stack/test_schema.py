"""The built-in validator agrees with the reference ``jsonschema`` package on the Compose schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import StackError
from orchestrator.stack.schema import compose_schema, first_violation, validate
from orchestrator.stack.yamlsrc import parse_documents

CORPUS = Path("/work/shared/compose-corpus")
REFERENCE = jsonschema.Draft7Validator(compose_schema())


def agree(document: Any) -> None:
    assert (first_violation(document) is None) == REFERENCE.is_valid(document), document


@pytest.mark.parametrize(
    "document",
    [
        {"services": {"web": {"image": "x"}}},
        {"services": {"web": {"image": 1}}},
        {"services": {"web": {"imagee": "x"}}},
        {"services": {"web": {"ports": 80}}},
        {"services": {"web": {"ports": [{"target": 80, "x-a": 1}]}}},
        {"services": {"web": {"ports": [{"foo": 1}]}}},
        {"services": {"web": {"environment": ["A=1", "A=1"]}}},
        {"services": {"web": {"environment": {"A": None, "B": 1, "C": True}}}},
        {"services": {"web": {"depends_on": {"db": {"condition": "bogus"}}}}},
        {"services": {"web": {"deploy": {"resources": {"limits": {"cpus": 0.5}}}}}},
        {"services": {"web": {"healthcheck": {"retries": 1.0}}}},
        {"services": {"web": {"cpu_count": -1}}},
        {"networks": {"n": {"ipam": {"config": [{"subnet": "10.0.0.0/8"}]}}}},
        {"x-anything": [1, 2], "volumes": {"v": None}},
        {"include": ["a.yaml", {"path": "b.yaml"}]},
        {"version": 3},
    ],
)
def test_agrees_on_examples(document: Any) -> None:
    agree(document)


def _corpus_documents() -> list[Any]:
    docs: list[Any] = []
    for path in sorted(CORPUS.rglob("*.y*ml")) if CORPUS.is_dir() else []:
        try:
            docs.extend(d.value for d in parse_documents(path.read_text(), str(path)))
        except StackError:
            continue
    return docs


@pytest.mark.skipif(not CORPUS.is_dir(), reason="compose corpus not present")
def test_agrees_on_the_corpus() -> None:
    documents = _corpus_documents()
    assert len(documents) > 100
    for document in documents:
        agree(document)


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 70000), st.floats(-2, 2, allow_nan=False), st.text(max_size=5)
)
SERVICE_KEYS = st.sampled_from(
    [
        "image",
        "ports",
        "environment",
        "labels",
        "command",
        "cpus",
        "privileged",
        "depends_on",
        "deploy",
        "x-y",
        "bogus",
    ]
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "target", "condition", "x-z"]), inner, max_size=3),
    ),
    max_leaves=6,
)


@settings(max_examples=300)
@given(st.dictionaries(SERVICE_KEYS, VALUES, max_size=4))
def test_agrees_on_random_services(service: dict[str, Any]) -> None:
    agree({"services": {"web": service}})


def test_error_points_at_the_offending_key() -> None:
    with pytest.raises(StackError) as err:
        validate({"services": {"web": {"image": "x", "imagee": "y"}}}, "c.yaml")
    [problem] = err.value.problems
    assert problem.path == "services.web.imagee"
    assert problem.message == "additional properties 'imagee' not allowed"
