"""Modules imported when first used: stand-ins put in ``sys.modules`` while another module imports.

Used where a module imports another at its top for a feature orc's processes rarely or never
use: ``codecache`` (``dataclasses`` imports ``inspect``, with ``ast``, ``dis`` and ``tokenize``,
only to describe a class that has no docstring) and ``runtime.launch`` (anyio's socket and TLS
modules import ``ssl``, with OpenSSL, for TLS the supervisor never serves).

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
