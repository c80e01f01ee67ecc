"""The first thing a new supervisor process does, before its imports: start its fork server.

Owned here: :func:`begin`, which ``runtime.launch.module_argv(early=...)`` makes the process call
with the supervisor's arguments before ``orchestrator.daemon.supervisor`` (and ``asyncio``,
``anyio``, the reconciler) is imported. It starts the project's fork server
(``runtime.process.server.start_early``), so that its start-up (~35 ms of CPU) runs on the other
CPU during the supervisor's imports (~0.1 s on one); the supervisor's runtime takes it over
(``server.take_early``). Anything unexpected here is left to the supervisor, which then starts
its fork server itself, as before.
"""

from __future__ import annotations

from collections.abc import Sequence


def begin(argv: Sequence[str]) -> None:
    """``argv``: the supervisor's arguments (``--project P --run-root R --lib-root L`` ...)."""
    values = dict(zip(argv[::2], argv[1::2], strict=False))
    project, run_root, lib_root = values.get("--project"), values.get("--run-root"), values.get("--lib-root")
    if not (project and run_root and lib_root):
        return
    try:
        from pathlib import Path

        from orchestrator.runtime.process.server import fork_server_dirs, start_early

        start_early(*fork_server_dirs(Path(run_root), Path(lib_root), project))
    except Exception:  # the supervisor starts its fork server itself, and reports what fails
        return


__all__ = ["begin"]
