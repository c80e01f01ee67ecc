"""Starting a project's supervisor: what the CLI does in its first milliseconds, so it is light.

Owned here: the roots' defaults (:func:`roots_for`), where a supervisor listens
(:func:`socket_path`), whether one runs (:func:`listening_supervisor`: its recorded pid and
start time still name a live process, and its socket exists), :func:`start_supervisor`
(``setsid`` and a double fork so the supervisor is no child of the CLI and survives the
terminal; the caller waits on a pipe until it listens) and :func:`begin_early` (take the
project's lock without waiting and start the supervisor). ``cli.entry`` calls
:func:`begin_early` for ``up`` before it imports typer, the loader or anything else: only the
standard library's basics are imported here, so the supervisor's start-up (most of a small
``up``) overlaps all of the CLI's. ``daemon.client`` and ``daemon.handle`` use the rest.
"""

from __future__ import annotations

import json
import os
import select
from collections.abc import Callable
from pathlib import Path

from orchestrator.runtime.launch import module_argv
from orchestrator.state import projectlock
from orchestrator.state.proc import same_process

DEFAULT_RUN_ROOT = Path("/run/orc")
DEFAULT_LIB_ROOT = Path("/var/lib/orc")
SOCKET_NAME = "supervisor.sock"
READY_TIMEOUT = 60.0


def roots_for(root: str | None) -> tuple[Path, Path]:
    """The run and lib roots: ``DIR/run`` and ``DIR/lib`` for ``--root DIR``, else the defaults."""
    if root:
        base = Path(root).absolute()
        return base / "run", base / "lib"
    return DEFAULT_RUN_ROOT, DEFAULT_LIB_ROOT


def socket_path(run_root: Path, project: str) -> Path:
    """Where the supervisor of ``project`` listens."""
    return run_root / project / SOCKET_NAME


def listening_supervisor(run_root: Path, project: str) -> Path | None:
    """The socket of the project's live supervisor, or None."""
    for attempt in range(3):
        try:
            with open(run_root / project / "project.json", "rb") as f:
                record = json.loads(f.read())
            pid, start_time = record.get("supervisor_pid"), record.get("supervisor_start_time")
            break
        except ValueError:
            # Read across a rewrite of the file's spare inode (``swapfile``): read it again.
            if attempt == 2:
                return None
        except (OSError, AttributeError):
            return None
    if not isinstance(pid, int) or not isinstance(start_time, int) or not same_process(pid, start_time):
        return None
    path = socket_path(run_root, project)
    return path if path.exists() else None


def start_supervisor(
    run_root: Path, lib_root: Path, project: str, cgroup_prefix: str = "orc"
) -> Callable[[], Path]:
    """Start a detached supervisor for ``project``; the returned call waits until it listens
    and returns its socket (so the caller can do other work while it boots)."""
    log = run_root / project / "supervisor.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    argv = module_argv(
        "orchestrator.daemon.supervisor",
        "--project",
        project,
        "--run-root",
        str(run_root),
        "--lib-root",
        str(lib_root),
        "--cgroup-prefix",
        cgroup_prefix,
        "--ready-fd",
        str(write_end),
        lean_imports=True,
        early="orchestrator.daemon.early",
    )
    if os.environ.get("ORC_PROFILE_WRAP"):
        argv = os.environ["ORC_PROFILE_WRAP"].split() + argv
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            os.close(read_end)
            os.set_inheritable(write_end, True)
            null = os.open(os.devnull, os.O_RDONLY)
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.close(write_end)
    os.waitpid(pid, 0)

    def wait_ready() -> Path:
        try:
            ready, _, _ = select.select([read_end], [], [], READY_TIMEOUT)
            answer = os.read(read_end, 64) if ready else b""
        finally:
            os.close(read_end)
        if answer.startswith(b"ready"):
            return socket_path(run_root, project)
        tail = ""
        try:
            tail = log.read_text()[-2000:].strip()
        except OSError:
            pass
        from orchestrator.errors import PermanentError

        raise PermanentError(
            f"the supervisor of project {project} did not start" + (f":\n{tail}" if tail else "")
        )

    return wait_ready


def begin_early(
    run_root: Path, lib_root: Path, project: str, cgroup_prefix: str = "orc"
) -> Callable[[], Path] | None:
    """Start the project's supervisor unless one runs or the project is locked (another orc is
    changing it: the verb then waits its turn as usual). The project's lock, the one
    ``state.store.FileStateStore.lock`` takes, is held until the returned call has waited
    for the supervisor to listen."""
    if not projectlock.SAFE_NAME.match(project) or listening_supervisor(run_root, project) is not None:
        return None
    fd = projectlock.open_lock(run_root, project)
    if not projectlock.try_take(fd):  # another orc is changing the project: the verb waits
        os.close(fd)
        return None
    try:
        waiting = None
        if listening_supervisor(run_root, project) is None:
            waiting = start_supervisor(run_root, lib_root, project, cgroup_prefix)
    except BaseException:
        _unlock(fd)
        raise
    if waiting is None:
        _unlock(fd)
        return None

    def finish() -> Path:
        try:
            return waiting()
        finally:
            _unlock(fd)

    return finish


def _unlock(fd: int) -> None:
    projectlock.release(fd)
    os.close(fd)


__all__ = [
    "DEFAULT_LIB_ROOT",
    "DEFAULT_RUN_ROOT",
    "SOCKET_NAME",
    "begin_early",
    "listening_supervisor",
    "roots_for",
    "socket_path",
    "start_supervisor",
]
