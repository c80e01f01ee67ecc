"""bind on arbitrary JSON under known keys: it returns a Stack or raises StackError, never
anything else (no TypeError/KeyError from a value of the wrong shape)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import StackError
from orchestrator.stack.bind import _SERVICE_KEYS, bind

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["", "0", "1s", "64m", "service:a", "container:x", "a:b", "a=b", "CMD", "ro", "/x", "tcp"]
    ),
    st.text(max_size=8),
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from(
                    ["type", "target", "source", "soft", "hard", "condition", "test", "path", "rate"]
                ),
                st.text(max_size=6),
            ),
            children,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
KEYS = [*sorted(_SERVICE_KEYS), "x-orc", "develop", "unknown_key"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(KEYS), JSON, max_size=6),
    st.dictionaries(
        st.sampled_from(["networks", "volumes", "secrets", "configs", "x-top", "models"]), JSON, max_size=3
    ),
)
def test_bind_returns_a_stack_or_a_stack_error(service: dict[str, Any], top: dict[str, Any]) -> None:
    document = {"name": "p", "services": {"web": service, "db": {"image": "x"}}, **top}
    try:
        stack = bind(document, config_hashes={"web": "h", "db": "h"})
    except StackError as exc:
        assert exc.problems and all(p.path for p in exc.problems)
    else:
        assert set(stack.services) == {"web", "db"}
