"""The compiled code of the methods ``dataclasses`` writes for orc's classes, kept across processes.

``orchestrator/__init__`` installs it, so it is in place before any orc module defines a class.
``save`` runs at exit (``atexit``: the CLI's ``exit_now`` and the supervisor's end both run the
handlers); the supervisor and the fork server call ``save_and_release`` once their imports are
done.

Every ``@dataclass`` writes the source text of the methods it generates (``__init__``,
``__repr__``, ``__eq__``, and for a frozen class ``__setattr__``, ``__delattr__``, ``__hash__``)
and compiles it while its module is imported. The supervisor defines ~140 such classes: ~780
compiles, about a third of the imports that every ``up`` waits for (~100 ms of CPU on this project's
machines). The compiled code depends on nothing but the text, so this module keeps it, by text,
in a file beside the module's bytecode (``__pycache__/<module>.<tag>.dataclasses``), checked
against the module's source as the bytecode is (modification time and size), and gives
``dataclasses`` the stored code for a text it has seen. The classes are exactly what
``dataclasses`` makes; only the compiling is skipped. (``dataclasses`` also gets ``inspect`` only
when it first uses it: ``orchestrator.firstuse``.) Nothing is written when Python writes no
bytecode either, and a file that does not read back, or was written by another Python build, is
ignored.

Only orc's own modules are served this way; any other module's classes are compiled as usual.
"""

from __future__ import annotations

import atexit
import builtins
import marshal
import os
import sys
from types import CodeType, ModuleType

from orchestrator.firstuse import ModuleOnFirstUse, StandingIn

# Not ``typing``, and ``dataclasses`` only once something imports it: the CLI's first steps (it
# starts the supervisor before importing anything else) must stay as light as they are.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from typing import Any

_OWN_PREFIX = __name__.partition(".")[0]
_SUFFIX = ".dataclasses"


class _ModuleCodes:
    """One module's compiled methods, and whether this process added any."""

    __slots__ = ("changed", "codes", "path", "stamp")

    def __init__(self, path: str, stamp: tuple[int, int], codes: dict[str, CodeType]) -> None:
        self.path = path
        self.stamp = stamp
        self.codes = codes
        self.changed = False


def _source_stamp(source: str) -> tuple[int, int] | None:
    try:
        status = os.stat(source)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


class MethodCodeCache:
    """Compiled code by source text, one file per module (named after its bytecode file)."""

    def __init__(self, module_prefix: str = _OWN_PREFIX) -> None:
        self.module_prefix = module_prefix
        self.compiled = 0  # texts compiled by this process since its last save
        self.served = 0  # texts whose stored code this process used
        self._modules: dict[str, _ModuleCodes | None] = {}

    def _for(self, namespace: dict[str, Any] | None) -> _ModuleCodes | None:
        if namespace is None:
            return None
        module = namespace.get("__name__")
        if not isinstance(module, str):
            return None
        if module in self._modules:
            return self._modules[module]
        entry = None
        if module == self.module_prefix or module.startswith(self.module_prefix + "."):
            entry = self._load(namespace.get("__cached__"), namespace.get("__file__"))
        self._modules[module] = entry
        return entry

    @staticmethod
    def _load(cached: object, source: object) -> _ModuleCodes | None:
        if not isinstance(cached, str) or not isinstance(source, str):
            return None
        stamp = _source_stamp(source)
        if stamp is None:
            return None
        path = os.path.splitext(cached)[0] + _SUFFIX
        stored: object = None
        try:
            with open(path, "rb") as file:
                stored = marshal.loads(file.read())
        except (OSError, EOFError, ValueError, TypeError):
            pass
        codes: dict[str, CodeType] = {}
        if (
            isinstance(stored, tuple)
            and len(stored) == 3
            and stored[0] == sys.version
            and stored[1] == stamp
            and isinstance(stored[2], dict)
        ):
            codes = stored[2]
        return _ModuleCodes(path, stamp, codes)

    def exec(self, source: Any, globals: dict[str, Any] | None = None, locals: Any = None) -> None:
        """``exec`` as ``dataclasses`` calls it, with the stored code for a known text."""
        entry = self._for(globals) if isinstance(source, str) else None
        if entry is None:
            if isinstance(source, str):
                # As exec(source) from dataclasses compiles it: without this module's __future__
                # flags (``annotations`` would make the generated methods' annotations strings).
                source = compile(source, "<string>", "exec", dont_inherit=True)
            builtins.exec(source, globals, locals)
            return
        code = entry.codes.get(source)
        if not isinstance(code, CodeType):
            # As exec(source) from dataclasses compiles it: no __future__ flags inherited.
            code = compile(source, "<string>", "exec", dont_inherit=True)
            entry.codes[source] = code
            entry.changed = True
            self.compiled += 1
        else:
            self.served += 1
        builtins.exec(code, globals, locals)

    def save(self) -> None:
        """Write the files of the modules for which this process compiled something, each
        atomically (a reader sees the old file or the new one)."""
        if not self.compiled:
            return
        self.compiled = 0
        if sys.dont_write_bytecode:
            return
        for entry in self._modules.values():
            if entry is None or not entry.changed:
                continue
            entry.changed = False
            partial = f"{entry.path}.{os.getpid()}.tmp"
            try:
                os.makedirs(os.path.dirname(entry.path), exist_ok=True)
                with open(partial, "wb") as file:
                    marshal.dump((sys.version, entry.stamp, entry.codes), file)
                os.replace(partial, entry.path)
            except OSError:
                try:
                    os.unlink(partial)
                except OSError:
                    pass

    def release(self) -> None:
        """Drop the texts held so far (the classes keep their code); a module imported later
        reads its file then."""
        self._modules = {name: None for name in self._modules}


CACHE = MethodCodeCache()


def _no_signature(cls: object) -> str:
    """What ``dataclasses`` gets for ``inspect.signature(cls)`` under ``-OO``: an empty text, so
    the class's doc is its name. (Python 3.11.2, Debian 12's, calls it without the ``try`` that
    later 3.11 releases put around it: raising here failed every class there.)"""
    return ""


def _patch(dataclasses: ModuleType) -> None:
    setattr(dataclasses, "exec", CACHE.exec)  # noqa: B010 - a module global, shadowing the builtin
    if sys.flags.optimize >= 2:
        # Without docstrings (``-OO``: the supervisor, the fork server) every class lacks one, and
        # dataclasses would describe each by ``inspect.signature`` (~40 us and a string per
        # class, and inspect loaded for it). Its doc becomes the class name: the signature's
        # text is empty.
        setattr(dataclasses, "inspect", ModuleOnFirstUse("inspect", signature=_no_signature))  # noqa: B010


class _PatchOnImport:
    """A meta path finder that lets the standard finders load ``dataclasses``, then patches it."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if name != "dataclasses":
            return None
        sys.meta_path.remove(self)
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return None  # found otherwise (frozen, say): then it is left alone
        load = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            # dataclasses imports inspect (with ast, dis, tokenize: ~5 ms, ~1 MiB) only to write
            # a docstring for a class without one: it gets inspect when that first happens.
            with StandingIn(ModuleOnFirstUse("inspect")):
                load(module)
            _patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Give ``dataclasses`` the cached ``exec`` (now, or once it is imported) and save new
    code at exit. Idempotent."""
    if any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        return
    loaded = sys.modules.get("dataclasses")
    if loaded is not None:
        if vars(loaded).get("exec") == CACHE.exec:
            return
        _patch(loaded)
    else:
        sys.meta_path.insert(0, _PatchOnImport())
    atexit.register(CACHE.save)


def save_and_release() -> None:
    """For a long-lived process once its imports are done: write what it compiled, then free
    the texts."""
    CACHE.save()
    CACHE.release()
