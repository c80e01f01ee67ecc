"""Recording fakes of the process runtime's Protocols, shipped for tests of this package and of the
layers above.

``RecordingKernel`` stands in for ``kernel.LinuxKernel``: it records every call in order (as
``(name, *args)`` tuples) over a tiny simulated file system, and ``execve`` raises ``Executed``.
``FakeProcessRuntime`` (in ``runtime.py``'s terms) records create/start/kill/exec/delete and lets
a test decide when containers exit.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from orchestrator.errors import ConflictError, NotFoundError, PermanentError

from .runtime import ContainerState, ExecHandle, ExecSpec, ExitStatus, Stdio, check_transition
from .spec import ContainerSpec, validate_spec


class Executed(Exception):
    """Raised by ``RecordingKernel.execve``: the sequence reached exec."""

    def __init__(self, path: str, args: tuple[str, ...], env: dict[str, str]) -> None:
        super().__init__(path)
        self.path, self.args, self.env = path, args, env


class RecordingKernel:
    """Records every call; ``files`` maps paths to text, ``dirs`` and ``executables`` are paths.

    ``fail_on`` maps a call name to an ``OSError`` that call raises (once it matches ``fail_path``
    when that is set), to test how failures are reported.
    """

    def __init__(
        self,
        files: dict[str, str] | None = None,
        dirs: Iterable[str] = (),
        executables: Iterable[str] = (),
        symlinks: dict[str, str] | None = None,
    ) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.files = dict(files or {})
        self.dirs = set(dirs)
        self.executables = set(executables)
        self.symlinks = dict(symlinks or {})
        self.fail_on: dict[str, OSError] = {}
        self.fail_path: str | None = None

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        error = self.fail_on.get(name)
        if error is not None and (self.fail_path is None or self.fail_path in args):
            raise error

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setns(self, fd: int, nstype: int) -> None:
        self._record("setns", fd, nstype)

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        self._record("mount", source, target, fstype, flags, data)

    def umount(self, target: str, flags: int) -> None:
        self._record("umount", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def chdir(self, path: str) -> None:
        self._record("chdir", path)

    def makedirs(self, path: str, mode: int) -> None:
        self._record("makedirs", path, mode)
        while path not in ("/", ""):
            self.dirs.add(path)
            path = posixpath.dirname(path)

    def touch(self, path: str) -> None:
        self._record("touch", path)
        self.files.setdefault(path, "")

    def mknod(self, path: str, kind: str, major: int, minor: int, mode: int, uid: int, gid: int) -> None:
        self._record("mknod", path, kind, major, minor, mode, uid, gid)

    def symlink(self, target: str, link: str) -> None:
        self._record("symlink", target, link)

    def readlink(self, path: str) -> str | None:
        return self.symlinks.get(path)

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs or path in self.executables or path in self.symlinks

    def is_dir(self, path: str) -> bool:
        return path in self.dirs

    def is_executable(self, path: str) -> bool:
        return path in self.executables

    def read_text(self, path: str) -> str | None:
        return self.files.get(path)

    def write_text(self, path: str, text: str) -> None:
        self._record("write_text", path, text)
        self.files[path] = text

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)

    def setdomainname(self, name: str) -> None:
        self._record("setdomainname", name)

    def setrlimit(self, resource_number: int, soft: int, hard: int) -> None:
        self._record("setrlimit", resource_number, soft, hard)

    def drop_bounding_capabilities(self, keep_mask: int, last_cap: int) -> None:
        self._record("drop_bounding_capabilities", keep_mask, last_cap)

    def set_keep_capabilities(self, keep: bool) -> None:
        self._record("set_keep_capabilities", keep)

    def set_no_new_privileges(self) -> None:
        self._record("set_no_new_privileges")

    def load_seccomp_filter(self, program: bytes) -> None:
        self._record("load_seccomp_filter", len(program))

    def set_groups(self, gids: tuple[int, ...]) -> None:
        self._record("set_groups", gids)

    def set_gid(self, gid: int) -> None:
        self._record("set_gid", gid)

    def set_uid(self, uid: int) -> None:
        self._record("set_uid", uid)

    def set_capabilities(self, mask: int) -> None:
        self._record("set_capabilities", mask)

    def setsid(self) -> None:
        self._record("setsid")

    def set_umask(self, mask: int) -> None:
        self._record("set_umask", mask)

    def dup2(self, fd: int, target: int) -> None:
        self._record("dup2", fd, target)

    def open_pty(self, ptmx: str) -> tuple[int, int, int]:
        self._record("open_pty", ptmx)
        return 100, 101, 0

    def set_window_size(self, fd: int, rows: int, columns: int) -> None:
        self._record("set_window_size", fd, rows, columns)

    def set_controlling_terminal(self, fd: int) -> None:
        self._record("set_controlling_terminal", fd)

    def send_fd(self, socket_fd: int, fd: int) -> None:
        self._record("send_fd", socket_fd, fd)

    def close_fds_except(self, keep: tuple[int, ...]) -> None:
        self._record("close_fds_except", keep)

    def execve(self, path: str, args: tuple[str, ...], env: dict[str, str]) -> NoReturn:
        self._record("execve", path, args)
        raise Executed(path, args, env)


@dataclass
class _FakeContainer:
    spec: ContainerSpec
    pid: int
    state: ContainerState = ContainerState.CREATED
    exit: ExitStatus | None = None
    execs: list[ExecSpec] = field(default_factory=list)


class FakeProcessRuntime:
    """A ``ProcessRuntime`` with no processes: it keeps the same state machine and errors, records
    calls in ``calls``, and exits a container when a test calls ``exit(id, code)`` (or on stop)."""

    def __init__(self, first_pid: int = 1000) -> None:
        self.calls: list[tuple[str, str]] = []
        self.containers: dict[str, _FakeContainer] = {}
        self.exec_results: dict[tuple[str, ...], int] = {}
        self._next_pid = first_pid
        self._changed = threading.Condition()

    def _get(self, container_id: str) -> _FakeContainer:
        try:
            return self.containers[container_id]
        except KeyError:
            raise NotFoundError(f"no container {container_id}") from None

    def create(self, spec: ContainerSpec, stdio: Stdio | None = None) -> int:
        validate_spec(spec)
        if spec.id in self.containers and self.containers[spec.id].state is not ContainerState.DELETED:
            raise ConflictError(f"container {spec.id} already exists")
        self.calls.append(("create", spec.id))
        self._next_pid += 1
        self.containers[spec.id] = _FakeContainer(spec, self._next_pid)
        return self._next_pid

    def adopt(self, spec: ContainerSpec, pid: int, start_time: int | None = None) -> None:
        if spec.id in self.containers and self.containers[spec.id].state is not ContainerState.DELETED:
            raise ConflictError(f"container {spec.id} already exists")
        self.calls.append(("adopt", spec.id))
        self.containers[spec.id] = _FakeContainer(spec, pid, ContainerState.RUNNING)

    def start(self, container_id: str) -> None:
        container = self._get(container_id)
        check_transition(container_id, container.state, ContainerState.RUNNING)
        self.calls.append(("start", container_id))
        container.state = ContainerState.RUNNING

    def console(self, container_id: str) -> int | None:
        self._get(container_id)
        return None

    def exit(self, container_id: str, code: int, oom_killed: bool = False) -> None:
        """Test hook: the container's init exits with ``code``."""
        with self._changed:
            container = self._get(container_id)
            container.state = ContainerState.STOPPED
            container.exit = ExitStatus(code=code, signal=None, oom_killed=oom_killed)
            self._changed.notify_all()

    def kill(self, container_id: str, signal_number: int) -> None:
        container = self._get(container_id)
        if container.state not in (ContainerState.CREATED, ContainerState.RUNNING):
            raise PermanentError(f"container {container_id} is {container.state.value}: nothing to signal")
        self.calls.append(("kill", container_id))
        if signal_number == 9:
            self.exit(container_id, 137)

    def stop(self, container_id: str, grace_seconds: float | None = None) -> ExitStatus:
        container = self._get(container_id)
        self.calls.append(("stop", container_id))
        if container.state in (ContainerState.CREATED, ContainerState.RUNNING):
            self.exit(container_id, 137 if container.state is ContainerState.CREATED else 143)
        assert container.exit is not None
        return container.exit

    def wait(self, container_id: str, timeout: float | None = None) -> ExitStatus | None:
        with self._changed:
            self._changed.wait_for(lambda: self._get(container_id).exit is not None, timeout)
            return self._get(container_id).exit

    def state(self, container_id: str) -> ContainerState:
        return self._get(container_id).state

    def pid(self, container_id: str) -> int:
        return self._get(container_id).pid

    def exec(self, container_id: str, spec: ExecSpec, stdio: Stdio | None = None) -> ExecHandle:
        container = self._get(container_id)
        if container.state is not ContainerState.RUNNING:
            raise ConflictError(f"cannot exec in container {container_id}: it is {container.state.value}")
        self.calls.append(("exec", container_id))
        container.execs.append(spec)
        self._next_pid += 1
        return ExecHandle(container_id, f"{container_id}-exec{len(container.execs)}", self._next_pid)

    def wait_exec(self, handle: ExecHandle, timeout: float | None = None) -> ExitStatus | None:
        container = self._get(handle.container_id)
        spec = container.execs[int(handle.exec_id.rsplit("exec", 1)[1]) - 1]
        return ExitStatus(code=self.exec_results.get(spec.args, 0), signal=None, oom_killed=False)

    def delete(self, container_id: str, force: bool = False) -> None:
        container = self._get(container_id)
        if force and container.state in (ContainerState.CREATED, ContainerState.RUNNING):
            self.exit(container_id, 137)
        check_transition(container_id, container.state, ContainerState.DELETED)
        self.calls.append(("delete", container_id))
        container.state = ContainerState.DELETED

    def close(self, hand_over: bool = False) -> None:
        self.calls.append(("close", "hand_over" if hand_over else ""))
