"""The syscalls a container start needs, behind one Protocol: ``Kernel``.

``LinuxKernel`` makes them with ctypes on libc (mount, pivot_root, setns, capset, prctl ...) and
``os``; ``fake.RecordingKernel`` records them so the start sequence (``sequence.py``) is unit-tested
without root. Failures surface as ``OSError`` with the errno; the sequence turns them into a report
naming the step. Only the fork server and its children call the real one.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import resource
import stat
import struct
import termios

from orchestrator.runtime.rawread import read_file

from . import wire

# The fork server imports this module: ``typing`` (~0.5 MiB there) only for the type checker.
# ``Kernel`` is a Protocol to it; at run time nothing checks a class against it, so a plain base
# stands in and ``typing`` is never loaded.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn, Protocol
else:
    Protocol = object

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MNT_DETACH = 0x2

# clone(2)/unshare(2)/setns(2) namespace flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2

_TIOCSPTLCK = 0x40045431
_TIOCGPTN = 0x80045430
_TIOCGPTPEER = 0x5441

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "capset": 126},
    "aarch64": {"pivot_root": 41, "capset": 91},
}


class Kernel(Protocol):
    """Every side effect of a container start. Paths are host paths until ``pivot_root``."""

    def unshare(self, flags: int) -> None: ...
    def setns(self, fd: int, nstype: int) -> None: ...
    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None: ...
    def umount(self, target: str, flags: int) -> None: ...
    def pivot_root(self, new_root: str, put_old: str) -> None: ...
    def chdir(self, path: str) -> None: ...
    def makedirs(self, path: str, mode: int) -> None: ...
    def touch(self, path: str) -> None: ...
    def mknod(self, path: str, kind: str, major: int, minor: int, mode: int, uid: int, gid: int) -> None: ...
    def symlink(self, target: str, link: str) -> None: ...
    def readlink(self, path: str) -> str | None: ...
    def exists(self, path: str) -> bool: ...
    def is_dir(self, path: str) -> bool: ...
    def is_executable(self, path: str) -> bool: ...
    def read_text(self, path: str) -> str | None: ...
    def write_text(self, path: str, text: str) -> None: ...
    def sethostname(self, name: str) -> None: ...
    def setdomainname(self, name: str) -> None: ...
    def setrlimit(self, resource_number: int, soft: int, hard: int) -> None: ...
    def drop_bounding_capabilities(self, keep_mask: int, last_cap: int) -> None: ...
    def set_keep_capabilities(self, keep: bool) -> None: ...
    def set_no_new_privileges(self) -> None: ...
    def load_seccomp_filter(self, program: bytes) -> None: ...
    def set_groups(self, gids: tuple[int, ...]) -> None: ...
    def set_gid(self, gid: int) -> None: ...
    def set_uid(self, uid: int) -> None: ...
    def set_capabilities(self, mask: int) -> None: ...
    def setsid(self) -> None: ...
    def set_umask(self, mask: int) -> None: ...
    def dup2(self, fd: int, target: int) -> None: ...
    def open_pty(self, ptmx: str) -> tuple[int, int, int]: ...
    def set_window_size(self, fd: int, rows: int, columns: int) -> None: ...
    def set_controlling_terminal(self, fd: int) -> None: ...
    def send_fd(self, socket_fd: int, fd: int) -> None: ...
    def close_fds_except(self, keep: tuple[int, ...]) -> None: ...
    def execve(self, path: str, args: tuple[str, ...], env: dict[str, str]) -> NoReturn: ...


def _check(result: int, what: str, path: str | None = None) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def _b(value: str | None) -> bytes | None:
    return value.encode() if value is not None else None


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class LinuxKernel:
    """The real thing: ctypes on libc plus ``os``. Construct it before forking (it loads libc)."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        libc = self._libc
        libc.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
        libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        libc.unshare.argtypes = [ctypes.c_int]
        libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        self._numbers = _SYSCALLS[os.uname().machine]
        # Kept alive here: the seccomp program must not be freed before the prctl that loads it.
        self._seccomp_buffer: ctypes.Array[ctypes.c_char] | None = None

    def unshare(self, flags: int) -> None:
        _check(self._libc.unshare(flags), "unshare")

    def setns(self, fd: int, nstype: int) -> None:
        _check(self._libc.setns(fd, nstype), "setns")

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        _check(self._libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)

    def umount(self, target: str, flags: int) -> None:
        _check(self._libc.umount2(_b(target), flags), "umount", target)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        rc = self._libc.syscall(self._numbers["pivot_root"], _b(new_root), _b(put_old))
        _check(rc, "pivot_root", new_root)

    def chdir(self, path: str) -> None:
        os.chdir(path)

    def makedirs(self, path: str, mode: int) -> None:
        os.makedirs(path, mode=mode, exist_ok=True)

    def touch(self, path: str) -> None:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))

    def mknod(self, path: str, kind: str, major: int, minor: int, mode: int, uid: int, gid: int) -> None:
        file_type = stat.S_IFCHR if kind == "c" else stat.S_IFBLK
        os.mknod(path, file_type | (mode & 0o7777), os.makedev(major, minor))
        os.chmod(path, mode & 0o7777)  # mknod honours the umask; the mode must be exact
        os.chown(path, uid, gid)

    def symlink(self, target: str, link: str) -> None:
        os.symlink(target, link)

    def readlink(self, path: str) -> str | None:
        try:
            return os.readlink(path)
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def is_executable(self, path: str) -> bool:
        return os.path.isfile(path) and os.access(path, os.X_OK)

    def read_text(self, path: str) -> str | None:
        # Plain reads, not ``open()``: the init calls this between fork and exec, where every
        # object touched is a page copied (io's three layers and codec lookup were ~20 faults).
        try:
            raw = read_file(path)
        except FileNotFoundError:
            return None
        # As text mode reads it: universal newlines.
        return raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")

    def write_text(self, path: str, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        _check(self._libc.sethostname(raw, len(raw)), "sethostname")

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        _check(self._libc.setdomainname(raw, len(raw)), "setdomainname")

    def setrlimit(self, resource_number: int, soft: int, hard: int) -> None:
        resource.setrlimit(resource_number, (soft, hard))

    def _prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> None:
        _check(self._libc.prctl(option, arg2, arg3, 0, 0), f"prctl({option})")

    def drop_bounding_capabilities(self, keep_mask: int, last_cap: int) -> None:
        for cap in range(last_cap + 1):
            if not keep_mask & (1 << cap):
                self._prctl(PR_CAPBSET_DROP, cap)

    def set_keep_capabilities(self, keep: bool) -> None:
        self._prctl(PR_SET_KEEPCAPS, 1 if keep else 0)

    def set_no_new_privileges(self) -> None:
        self._prctl(PR_SET_NO_NEW_PRIVS, 1)

    def load_seccomp_filter(self, program: bytes) -> None:
        self._seccomp_buffer = ctypes.create_string_buffer(program, len(program))
        prog = _SockFprog(len(program) // 8, ctypes.addressof(self._seccomp_buffer))
        rc = self._libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0)
        _check(rc, "seccomp")

    def set_groups(self, gids: tuple[int, ...]) -> None:
        os.setgroups(list(gids))

    def set_gid(self, gid: int) -> None:
        os.setresgid(gid, gid, gid)

    def set_uid(self, uid: int) -> None:
        os.setresuid(uid, uid, uid)

    def set_capabilities(self, mask: int) -> None:
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i in range(2):
            word = (mask >> (32 * i)) & 0xFFFFFFFF
            data[i] = _CapData(word, word, word)
        rc = self._libc.syscall(self._numbers["capset"], ctypes.byref(header), ctypes.byref(data))
        _check(rc, "capset")
        self._prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)

    def setsid(self) -> None:
        os.setsid()

    def set_umask(self, mask: int) -> None:
        os.umask(mask)

    def dup2(self, fd: int, target: int) -> None:
        os.dup2(fd, target, inheritable=True)

    def open_pty(self, ptmx: str) -> tuple[int, int, int]:
        """A terminal pair from the devpts instance behind ``ptmx``: (master, slave, number)."""
        master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
            (number,) = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))
            slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        except OSError:
            os.close(master)
            raise
        return master, slave, number

    def set_window_size(self, fd: int, rows: int, columns: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def set_controlling_terminal(self, fd: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)

    def send_fd(self, socket_fd: int, fd: int) -> None:
        sock = wire.socket_of(socket_fd)
        try:
            wire.send(sock, b"console", [fd])
        finally:
            sock.detach()

    def close_fds_except(self, keep: tuple[int, ...]) -> None:
        low = 3
        for fd in sorted(k for k in keep if k >= 3):
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, 1 << 20)

    def execve(self, path: str, args: tuple[str, ...], env: dict[str, str]) -> NoReturn:
        os.execve(path, list(args), env)


def set_child_subreaper() -> None:
    """Make orphaned descendants (container inits, exec'd processes) children of this process."""
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")
