"""How orc starts its own long-lived Python processes: the supervisor and the fork server.

Called by ``daemon.spawn`` (the supervisor) and ``runtime.process.runtime`` (the fork server).
Both run as ``python -S -OO``: no ``site`` module, so no ``.pth`` files are executed at start-up
(an editable install's import finder alone cost ~12 ms and ~2.5 MiB per process); and no
docstrings or ``assert`` statements in their code (they load the ``.opt-2.pyc`` bytecode). The
docstrings were ~1 MiB of a supervisor's memory and nothing in either process reads them;
orc's asserts only narrow types for mypy. ``codecache`` sees to it that ``dataclasses``, which
writes a docstring for a class without one, does not load ``inspect`` for that there. The child gets
the caller's import path instead, with the directory that holds this ``orchestrator`` package
first, so it runs exactly the code (and the dependencies) its caller runs. The caller's first
path entry is dropped: it is the caller's script directory or, for ``python -m``, its working
directory, which for the CLI is the user's project directory and must not shadow any module.

The supervisor also starts with its event loop imported without OpenSSL
(:func:`import_event_loop_without_openssl`): it serves nothing over TLS, and OpenSSL was ~4-6 MiB
of its memory; and with ``shutil`` imported without its compressors (:func:`import_lean`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator.firstuse import ModuleOnFirstUse, StandingIn, forwarding_class

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)


def child_path() -> list[str]:
    """The import path a child process gets: this package's root, then the caller's path."""
    paths = [PACKAGE_ROOT]
    for entry in sys.path[1:]:
        if entry and entry not in paths:
            paths.append(entry)
    return paths


def _ssl_on_first_use() -> ModuleOnFirstUse:
    """``ssl`` imported on first use. anyio's TLS module takes ``SSLContext`` by name (for
    annotations) while it is imported: it gets a class that forwards ``isinstance`` and
    construction to the real one."""

    def real_context() -> type:
        context: type = stand_in.load().SSLContext
        return context

    context = forwarding_class("SSLContext", real_context)
    stand_in = ModuleOnFirstUse("ssl", SSLContext=context)
    return stand_in


def import_event_loop_without_openssl() -> None:
    """Import asyncio and anyio's asyncio backend without loading ``ssl`` (OpenSSL: ~4-6 MiB of
    the process and ~8 ms of its start), unless something imported either already.

    asyncio imports ``ssl`` only for its own TLS transports and does without them when the
    import fails: the supervisor never uses them. anyio's backend imports its socket module,
    which imports ``ssl`` unconditionally: those modules get ``ssl`` on first use
    (``orchestrator.firstuse``), which a registry pull through httpx is. Afterwards ``import
    ssl`` is the real module for everyone."""
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]  # ``import ssl`` raises ImportError
    try:
        import asyncio  # noqa: F401
    finally:
        del sys.modules["ssl"]
    with StandingIn(_ssl_on_first_use()):
        try:
            __import__("anyio._backends._asyncio")
        except ImportError:
            pass  # another anyio: it imports what it imports when it runs


def import_shutil_without_compressors() -> None:
    """Import ``shutil`` with ``bz2`` and ``lzma`` imported on first use (~0.4 MiB with their
    libraries), unless it is imported already: shutil imports them only to learn that its
    archive formats can use them, which the supervisor never packs or unpacks."""
    if "shutil" in sys.modules:
        return
    with StandingIn(ModuleOnFirstUse("bz2")), StandingIn(ModuleOnFirstUse("lzma")):
        import shutil  # noqa: F401


def import_lean() -> None:
    """The supervisor's first imports: :func:`import_event_loop_without_openssl` and
    :func:`import_shutil_without_compressors`."""
    import_event_loop_without_openssl()
    import_shutil_without_compressors()


def module_argv(
    module: str,
    *args: str,
    python: str = sys.executable,
    lean_imports: bool = False,
    early: str | None = None,
) -> list[str]:
    """A command line that runs ``module`` as ``__main__`` (as ``python -m`` would) with
    ``args`` as its ``sys.argv[1:]``, without the ``site`` module and docstrings, and with the
    garbage collector disabled (the module enables it once its imports are done); with
    ``lean_imports`` it first imports what :func:`import_lean` does. ``early`` names a module
    whose ``begin(args)`` runs before all of that (see ``orchestrator.daemon.early``)."""
    # The module's name is an argument of its own, so ``ps`` and ``pgrep -f`` still show it.
    prelude = f"from {early} import begin; begin(sys.argv[2:]); " if early else ""
    prelude += f"from {__name__} import import_lean; import_lean(); " if lean_imports else ""
    # The collector is off while the process imports (~15 % of a supervisor's start-up went to
    # collections of objects that all live on); the module's main turns it back on.
    boot = (
        f"import gc; gc.disable(); import sys; sys.path[:] = {child_path()!r}; {prelude}import runpy; "
        "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)"
    )
    return [python, "-S", "-OO", "-c", boot, module, *args]
