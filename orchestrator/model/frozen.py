"""An immutable mapping for the frozen model, and ``freeze`` for arbitrary JSON-like values.

The model's dataclasses are frozen, so their mappings must be too. ``FrozenDict`` is a ``dict``
(JSON-serialisable, pickles, compares equal to a plain dict with the same items) whose mutating
methods raise ``TypeError``. Used by every model class and by ``stack.bind``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


class FrozenDict(dict[_K, _V]):
    """A dict that cannot be changed after construction."""

    __slots__ = ()

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is immutable")

    __setitem__ = _immutable
    __delitem__ = _immutable
    __ior__ = _immutable
    clear = _immutable
    pop = _immutable
    popitem = _immutable
    setdefault = _immutable
    update = _immutable

    def __hash__(self) -> int:  # type: ignore[override]
        # Values may be unhashable (extension payloads); keys are enough to stay consistent with ==.
        return hash(frozenset(self.keys()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict[_K, _V]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict[_K, _V]:
        return self

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


EMPTY: FrozenDict[Any, Any] = FrozenDict()


def frozen_map(items: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = ()) -> FrozenDict[_K, _V]:
    """A ``FrozenDict`` of ``items`` (values are taken as they are, not deep-frozen)."""
    return FrozenDict(items)


def freeze(value: Any) -> Any:
    """Deep-freeze a JSON-like value: mappings become FrozenDicts, lists and tuples become tuples."""
    if isinstance(value, Mapping):
        return FrozenDict((k, freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of ``freeze``: plain dicts and lists, for JSON output and comparisons."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def compact_repr(instance: Any) -> str:
    """``Name(field=value, ...)`` listing only fields that differ from their defaults, so that a
    Service with a hundred fields prints as what the file actually set."""
    shown = []
    for spec in dataclasses.fields(instance):
        value = getattr(instance, spec.name)
        if spec.default is not dataclasses.MISSING and value == spec.default:
            continue
        shown.append(f"{spec.name}={value!r}")
    return f"{type(instance).__name__}({', '.join(shown)})"
