"""The kept code of dataclasses' generated methods: served from the file, the same classes,
invalidated with the module's source, and never used for modules that are not orc's."""

from __future__ import annotations

import dataclasses
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.codecache import MethodCodeCache

MODULE = """
from __future__ import annotations
import dataclasses

@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int = 0

@dataclasses.dataclass
class Bag:
    items: list[int] = dataclasses.field(default_factory=list)
    name: str = "bag"
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "cachedpkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "shapes.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    yield root
    for name in [n for n in sys.modules if n == "cachedpkg" or n.startswith("cachedpkg.")]:
        del sys.modules[name]


def _import_with(cache: MethodCodeCache, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setattr(dataclasses, "exec", cache.exec, raising=False)
    sys.modules.pop("cachedpkg.shapes", None)
    importlib.invalidate_caches()
    return importlib.import_module("cachedpkg.shapes")


def _stored(package: Path) -> list[Path]:
    return sorted((package / "__pycache__").glob("shapes.*.dataclasses"))


def test_a_second_process_gets_the_same_classes_without_compiling(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = MethodCodeCache("cachedpkg")
    _import_with(first, monkeypatch)
    compiled = first.compiled
    assert compiled > 0
    first.save()
    assert len(_stored(package)) == 1

    second = MethodCodeCache("cachedpkg")
    shapes = _import_with(second, monkeypatch)
    assert second.compiled == 0 and second.served == compiled
    point = shapes.Point(1)  # type: ignore[attr-defined]
    assert point == shapes.Point(1, 0)  # type: ignore[attr-defined]
    assert repr(point) == "Point(x=1, y=0)"
    assert hash(point) == hash(shapes.Point(1, 0))  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 2
    bag, other = shapes.Bag(), shapes.Bag()  # type: ignore[attr-defined]
    bag.items.append(1)
    assert other.items == [] and bag.name == "bag"


def test_a_changed_module_is_compiled_again(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = MethodCodeCache("cachedpkg")
    _import_with(first, monkeypatch)
    first.save()
    source = package / "shapes.py"
    source.write_text(MODULE.replace("y: int = 0", "y: int = 5"))
    os.utime(source, ns=(1, 1))  # another modification time, whatever the clock's resolution

    again = MethodCodeCache("cachedpkg")
    shapes = _import_with(again, monkeypatch)
    assert again.compiled > 0
    assert shapes.Point(1).y == 5  # type: ignore[attr-defined]


def test_an_unreadable_or_foreign_file_is_ignored(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = MethodCodeCache("cachedpkg")
    _import_with(first, monkeypatch)
    first.save()
    (stored,) = _stored(package)
    for content in (b"\x00garbage", b""):
        stored.write_bytes(content)
        cache = MethodCodeCache("cachedpkg")
        shapes = _import_with(cache, monkeypatch)
        assert cache.compiled > 0
        assert shapes.Point(2).x == 2  # type: ignore[attr-defined]


def test_nothing_is_written_when_python_writes_no_bytecode(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = MethodCodeCache("cachedpkg")
    _import_with(cache, monkeypatch)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    cache.save()
    assert _stored(package) == []


def test_modules_of_other_packages_are_compiled_as_usual(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = MethodCodeCache("someoneelse")
    shapes = _import_with(cache, monkeypatch)
    cache.save()
    assert cache.compiled == 0
    assert _stored(package) == []
    assert shapes.Point(3) == shapes.Point(3, 0)  # type: ignore[attr-defined]


def test_other_modules_methods_are_compiled_without_the_caches_future_flags(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``codecache`` itself is written with ``from __future__ import annotations``; the methods
    it compiles for a module that is not (here: one it does not serve) must not inherit it."""
    (package / "shapes.py").write_text("import dataclasses\n" + MODULE.split("import dataclasses\n", 1)[1])
    shapes = _import_with(MethodCodeCache("someoneelse"), monkeypatch)
    assert shapes.Point.__init__.__annotations__ == {"x": int, "y": int, "return": None}  # type: ignore[attr-defined]
    assert shapes.Point.__doc__ == "Point(x: int, y: int = 0)"  # type: ignore[attr-defined]


def test_the_supervisors_imports_compile_nothing_once_the_cache_is_warm() -> None:
    script = (
        "import orchestrator.daemon.supervisor, orchestrator.reconciler.adapter\n"
        "import orchestrator.runtime.process.forkserver\n"
        "from orchestrator import codecache\n"
        "print(codecache.CACHE.compiled, codecache.CACHE.served)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    runs = [
        subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    compiled, served = map(int, runs[1].stdout.split())
    assert compiled == 0
    assert served > 500  # ~780 methods of ~140 classes


def test_without_docstrings_a_dataclass_is_described_by_its_name_and_inspect_stays_out() -> None:
    """The supervisor and the fork server run with ``-OO``: every class lacks a docstring, and
    dataclasses would load ``inspect`` and call ``inspect.signature`` for each one."""
    script = (
        "import sys, orchestrator, dataclasses\n"
        "@dataclasses.dataclass\n"
        "class Plain:\n"
        "    size: int = 1\n"
        "print(Plain.__doc__, 'inspect' in sys.modules, Plain(2) == Plain(2), Plain.__init__.__doc__)\n"
    )
    for flags, expected in ((["-OO"], "Plain False True None"), ([], "Plain(size: int = 1) True True None")):
        done = subprocess.run(
            [sys.executable, "-S", *flags, "-c", f"import sys; sys.path[:0] = {sys.path!r}\n" + script],
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.split("\n")[0] == expected


def test_without_docstrings_the_signature_dataclasses_asks_for_is_an_empty_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python 3.11.2 (Debian 12's) writes a class's doc as ``name + str(inspect.signature(cls))``
    with no ``try`` around it (later 3.11 releases catch ``TypeError`` and ``ValueError``): the
    stand-in must answer, not raise, or every orc class fails there under ``-OO``."""
    from types import ModuleType

    from orchestrator import codecache

    @dataclasses.dataclass
    class Plain:
        size: int = 1

    module = ModuleType("dataclasses_stand_in")
    monkeypatch.setattr(sys, "flags", type("Flags", (), {"optimize": 2})())
    codecache._patch(module)
    monkeypatch.undo()
    doc = Plain.__name__ + str(module.inspect.signature(Plain)).replace(" -> None", "")
    assert doc == "Plain"
