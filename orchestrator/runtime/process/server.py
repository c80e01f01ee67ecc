"""Starting a fork server process, possibly before its runtime exists.

Owned here: :func:`fork_server_dirs` (where a project's fork server lives: its directory, with
its listening socket, and the seccomp cache), :func:`spawn_fork_server` (the process and the
runtime's end of its control socket) and the early start: :func:`start_early` runs first thing
in a new supervisor process (``orchestrator.daemon.early``, before the supervisor's imports) and
:func:`take_early` hands that server to the ``ForkServerRuntime`` made later for the same
directory. Why: the fork server's start-up (its interpreter and imports, ~35 ms of CPU) then runs
on the other CPU while the supervisor imports (~0.1 s on one), instead of beside the first
containers' work.

Light on purpose (``socket`` and ``subprocess`` only): it is imported before anything else of
the supervisor.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from orchestrator.runtime.launch import module_argv

LISTEN_NAME = "forkserver.sock"

# Servers started early, by directory: (cache directory, blank inits, python) they were started
# with, the runtime's end of the control socket, the process.
_early: dict[str, tuple[tuple[str, int, str], socket.socket, subprocess.Popen[bytes]]] = {}


def fork_server_dirs(run_root: Path, lib_root: Path, project: str) -> tuple[Path, Path]:
    """The directory of ``project``'s fork server (its socket, the containers' mount points)
    and the directory of compiled seccomp programs it uses."""
    return run_root / project / "process", lib_root / "seccomp-cache"


def prepare_dir(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)  # holds the fork server's socket: root's only


def spawn_fork_server(
    state_dir: Path, cache_dir: Path, blank_inits: int, python: str
) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """A new fork server for ``state_dir`` (which must exist) and the runtime's end of its
    control socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        server = subprocess.Popen(
            module_argv(
                "orchestrator.runtime.process.forkserver",
                str(theirs.fileno()),
                str(cache_dir),
                str(blank_inits),
                str(state_dir / LISTEN_NAME),
                python=python,
            ),
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # no terminal signals from the supervisor's session
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return ours, server


def start_early(state_dir: Path, cache_dir: Path, blank_inits: int = 0, python: str = sys.executable) -> bool:
    """Start the fork server of ``state_dir`` now, for :func:`take_early`; unless a socket is
    left there (a fork server that outlived its supervisor may be serving containers: the runtime
    reconnects to it as usual). Whether one was started."""
    if (state_dir / LISTEN_NAME).exists() or str(state_dir) in _early:
        return False
    prepare_dir(state_dir)
    sock, server = spawn_fork_server(state_dir, cache_dir, blank_inits, python)
    _early[str(state_dir)] = ((str(cache_dir), blank_inits, python), sock, server)
    return True


def take_early(
    state_dir: Path, cache_dir: Path, blank_inits: int, python: str
) -> tuple[socket.socket, subprocess.Popen[bytes]] | None:
    """The fork server :func:`start_early` started for ``state_dir`` with these settings (once),
    or None. One started with other settings is told to go (its socket closed: with nothing to
    serve it exits)."""
    entry = _early.pop(str(state_dir), None)
    if entry is None:
        return None
    settings, sock, server = entry
    if settings != (str(cache_dir), blank_inits, python):
        sock.close()
        server.wait()
        return None
    return sock, server


__all__ = ["LISTEN_NAME", "fork_server_dirs", "prepare_dir", "spawn_fork_server", "start_early", "take_early"]
