"""Modules imported when first used: stand-ins put in ``sys.modules`` while another module imports.

Used where a module imports another at its top for a feature orc's processes rarely or never
use: ``codecache`` (``dataclasses`` imports ``inspect``, with ``ast``, ``dis`` and ``tokenize``,
only to describe a class that has no docstring), ``runtime.launch`` (anyio's socket and TLS
modules import ``ssl``, with OpenSSL, for TLS the supervisor never serves) and
``runtime.network.netlink`` (pyroute2's config takes ``multiprocessing``'s Pipe, Queue and
Process by name, for helper processes orc never starts).

A stand-in is in ``sys.modules`` only while the importing module runs; whoever imports the name
afterwards gets the real module. The importer keeps the stand-in: the first attribute it asks of
it imports the real module, and from then on every attribute is the real module's. Names the
importer takes with ``from M import N`` while it runs must be given to the stand-in (a
``from``-import asks for the attribute at once).
"""

from __future__ import annotations

import sys
from types import ModuleType, TracebackType

# No typing, no contextlib: the CLI's first steps import this (through codecache).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class ModuleOnFirstUse(ModuleType):
    """Stands in for the module ``name``; ``names`` are attributes it has without importing."""

    def __init__(self, name: str, **names: object) -> None:
        super().__init__(name)
        for attribute, value in names.items():
            setattr(self, attribute, value)
        self._real: ModuleType | None = None

    def load(self) -> ModuleType:
        """The real module (imported now if nobody has yet)."""
        real = self._real
        if real is None:
            name = self.__name__
            standing_in = sys.modules.get(name) is self
            if standing_in:
                del sys.modules[name]
            try:
                __import__(name)
                real = sys.modules[name]
            finally:
                if standing_in and name not in sys.modules:
                    sys.modules[name] = self
            self._real = real
        return real

    def __getattr__(self, attribute: str) -> object:
        if attribute.startswith("__") or attribute == "_real":
            raise AttributeError(attribute)
        return getattr(self.load(), attribute)


class StandingIn:
    """``with StandingIn(stand_in):`` the stand-in is ``sys.modules[name]`` (unless the module
    is imported already, or something imports the real one meanwhile)."""

    def __init__(self, stand_in: ModuleOnFirstUse) -> None:
        self.stand_in = stand_in

    def __enter__(self) -> None:
        sys.modules.setdefault(self.stand_in.__name__, self.stand_in)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        name = self.stand_in.__name__
        if sys.modules.get(name) is self.stand_in:
            del sys.modules[name]


class _ForwardingClass(type):
    """The metaclass of :func:`forwarding_class`'s classes."""

    _real: Callable[[], type]

    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, cls._real())

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, cls._real())

    def __call__(cls, *args: object, **kwargs: object) -> object:
        return cls._real()(*args, **kwargs)


def forwarding_class(name: str, real: Callable[[], type]) -> type:
    """A class to give a stand-in for a class the importer takes by name: ``isinstance``,
    ``issubclass`` and construction go to ``real()`` (which imports the real module)."""
    return _ForwardingClass(name, (), {"_real": staticmethod(real)})


def forwarding_function(name: str, real: Callable[[], Callable[..., object]]) -> Callable[..., object]:
    """A function to give a stand-in for a function the importer takes by name: a call goes to
    ``real()`` (which imports the real module)."""

    def forward(*args: object, **kwargs: object) -> object:
        return real()(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    return forward
