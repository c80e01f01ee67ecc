"""How orc starts its own long-lived Python processes: the supervisor and the fork server.

Called by ``daemon.client`` (the supervisor) and ``runtime.process.runtime`` (the fork server).
Both run as ``python -S``: no ``site`` module, so no ``.pth`` files are executed at start-up
(an editable install's import finder alone cost ~12 ms and ~2.5 MiB per process). The child gets
the caller's import path instead, with the directory that holds this ``orchestrator`` package
first, so it runs exactly the code (and the dependencies) its caller runs. The caller's first
path entry is dropped: it is the caller's script directory or, for ``python -m``, its working
directory, which for the CLI is the user's project directory and must not shadow any module.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)


def child_path() -> list[str]:
    """The import path a child process gets: this package's root, then the caller's path."""
    paths = [PACKAGE_ROOT]
    for entry in sys.path[1:]:
        if entry and entry not in paths:
            paths.append(entry)
    return paths


def module_argv(module: str, *args: str, python: str = sys.executable) -> list[str]:
    """A command line that runs ``module`` as ``__main__`` (as ``python -m`` would) with
    ``args`` as its ``sys.argv[1:]``, without the ``site`` module."""
    # The module's name is an argument of its own, so ``ps`` and ``pgrep -f`` still show it.
    boot = (
        f"import sys; sys.path[:] = {child_path()!r}; import runpy; "
        "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)"
    )
    return [python, "-S", "-c", boot, module, *args]
