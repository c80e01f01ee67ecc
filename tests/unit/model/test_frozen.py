"""FrozenDict and freeze/thaw: the immutable mappings the model is made of."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from orchestrator.model import FrozenDict, freeze, thaw


def test_every_mutator_raises() -> None:
    frozen = FrozenDict(a=1)
    mutations = [
        lambda: frozen.__setitem__("b", 2),
        lambda: frozen.__delitem__("a"),
        frozen.clear,
        lambda: frozen.pop("a"),
        frozen.popitem,
        lambda: frozen.setdefault("b", 2),
        lambda: frozen.update(b=2),
        lambda: frozen.__ior__({"b": 2}),
    ]
    for mutate in mutations:
        with pytest.raises(TypeError, match="immutable"):
            mutate()
    assert frozen == {"a": 1}


def test_behaves_as_a_dict_for_readers() -> None:
    frozen = FrozenDict({"b": 2, "a": 1})
    assert frozen == {"a": 1, "b": 2}
    assert list(frozen) == ["b", "a"]
    assert json.loads(json.dumps(frozen)) == {"a": 1, "b": 2}
    assert frozen | {"c": 3} == {"a": 1, "b": 2, "c": 3}


def test_pickles_copies_and_hashes() -> None:
    frozen = FrozenDict(a=[1, 2])
    restored = pickle.loads(pickle.dumps(frozen))
    assert type(restored) is FrozenDict and restored == frozen
    assert copy.copy(frozen) is frozen
    assert copy.deepcopy(FrozenDict(a=1)) == {"a": 1}
    assert hash(FrozenDict(a=1)) == hash(FrozenDict(a=2)) or FrozenDict(a=1) != FrozenDict(a=2)
    assert {FrozenDict(a=1): "x"}[FrozenDict(a=1)] == "x"


def test_freeze_is_deep_and_thaw_undoes_it() -> None:
    value = {"a": [1, {"b": [2, 3]}], "c": None}
    frozen = freeze(value)
    assert isinstance(frozen, FrozenDict)
    assert isinstance(frozen["a"], tuple)
    assert isinstance(frozen["a"][1], FrozenDict)
    assert frozen["a"][1]["b"] == (2, 3)
    assert thaw(frozen) == value
