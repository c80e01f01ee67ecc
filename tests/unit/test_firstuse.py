"""orchestrator.firstuse: a module imported by another only on its first use."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.firstuse import ModuleOnFirstUse, StandingIn, forwarding_class, forwarding_function


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "orc_heavy.py").write_text(
        "LOADS = []\nLOADS.append(1)\nANSWER = 42\nclass Thing:\n    def __init__(self, size=0):\n        self.size = size\n"
        "def make(size):\n    return Thing(size)\n"
    )
    (tmp_path / "orc_user.py").write_text(
        "import orc_heavy\nfrom orc_heavy import Thing\ndef answer():\n    return orc_heavy.ANSWER\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("orc_heavy", "orc_user"):
        sys.modules.pop(name, None)


def test_the_importer_gets_the_real_module_on_its_first_use(modules: Path) -> None:
    stand_in = ModuleOnFirstUse("orc_heavy", Thing=object)
    with StandingIn(stand_in):
        import orc_user  # type: ignore[import-not-found]
    assert "orc_heavy" not in sys.modules  # not loaded, and no longer standing in
    assert orc_user.orc_heavy is stand_in
    assert orc_user.Thing is object  # a name taken with ``from`` is what the stand-in was given
    assert orc_user.answer() == 42  # first use: the real module is imported
    real = sys.modules["orc_heavy"]
    assert stand_in.load() is real and real.LOADS == [1]
    import orc_heavy  # type: ignore[import-not-found]

    assert orc_heavy is real  # everyone else gets the real one
    assert orc_user.answer() == 42 and real.LOADS == [1]  # imported once


def test_a_module_imported_already_is_not_stood_in_for(modules: Path) -> None:
    import orc_heavy

    with StandingIn(ModuleOnFirstUse("orc_heavy")):
        import orc_user

    assert orc_user.orc_heavy is orc_heavy and sys.modules["orc_heavy"] is orc_heavy


def test_dunder_names_do_not_load_the_module(modules: Path) -> None:
    stand_in = ModuleOnFirstUse("orc_heavy")
    with pytest.raises(AttributeError):
        stand_in.__wrapped__  # noqa: B018 - what inspect and friends probe for
    assert "orc_heavy" not in sys.modules


def test_forwarding_names_load_the_module_when_called_or_checked(modules: Path) -> None:
    """What an importer takes by name at import time (``from M import Class``, or ``M.function``
    read into a global) without using it then: the real module loads on the first call."""

    def real() -> object:
        return stand_in.load()

    stand_in = ModuleOnFirstUse(
        "orc_heavy",
        Thing=forwarding_class("Thing", lambda: real().Thing),  # type: ignore[attr-defined]
        make=forwarding_function("make", lambda: real().make),  # type: ignore[attr-defined]
    )
    with StandingIn(stand_in):
        import orc_user

    assert "orc_heavy" not in sys.modules
    thing_class = orc_user.Thing
    assert thing_class.__name__ == "Thing" and stand_in.make.__name__ == "make"
    made = stand_in.make(3)  # the first call imports the real module
    assert "orc_heavy" in sys.modules
    heavy = sys.modules["orc_heavy"]
    assert type(made) is heavy.Thing and made.size == 3
    built = thing_class(size=5)
    assert type(built) is heavy.Thing and built.size == 5
    assert isinstance(built, thing_class) and issubclass(heavy.Thing, thing_class)
    assert not isinstance(object(), thing_class)
    assert heavy.LOADS == [1]
