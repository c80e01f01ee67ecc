"""Seccomp: profiles in orc's own shape, Docker's default profile, and compilation to cached BPF.

A ``Profile`` is a default action plus ordered ``SyscallRule``s. ``default_profile(caps, arch)``
builds Docker's default profile for a capability set (Docker gates some syscalls on capabilities);
``profile_from_docker_json`` reads a custom profile in Docker's JSON format (what
``security_opt: seccomp=file.json`` points at). ``BpfCache.program(profile)`` compiles a profile with
libseccomp (ctypes on ``libseccomp.so.2``) once, as a binary tree of syscall numbers, keeps the
BPF in memory and on disk keyed by a hash of the profile, the architecture and the program format,
and returns the raw ``sock_filter`` bytes; the start sequence loads them per container with ``prctl(PR_SET_SECCOMP)``
(``LinuxKernel.load_seccomp_filter``), which costs far less than running libseccomp per container.

Called by the fork server (parent side, before fork) and by tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_module
import os
import sys
from dataclasses import dataclass, field

from orchestrator.errors import PermanentError
from orchestrator.hashing import sha256_hex

# The fork server imports this module: ``typing`` (~0.5 MiB there) only for the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class ArgCondition:
    """Compare syscall argument ``index`` with ``value``: op is one of ne, lt, le, eq, ge, gt,
    masked_eq (``arg & value == value_two``)."""

    index: int
    op: str
    value: int
    value_two: int = 0


@dataclass(frozen=True)
class SyscallRule:
    """What happens when the process calls one of ``names`` (with ``args`` matching)."""

    names: tuple[str, ...]
    action: str = "allow"  # allow | errno | kill_process | kill_thread | trap | log
    errno: int = errno_module.EPERM
    args: tuple[ArgCondition, ...] = ()


@dataclass(frozen=True)
class Profile:
    """A seccomp profile: the default action and the rules that differ from it."""

    default_action: str = "errno"
    default_errno: int = errno_module.EPERM
    rules: tuple[SyscallRule, ...] = ()
    extra_arches: tuple[str, ...] = field(default=())

    def key(self) -> str:
        # The dataclass repr names every field of every rule, in order: a profile's whole content.
        return sha256_hex(repr(self).encode())


# --- Docker's default profile, as data -------------------------------------------------------------
# Syscalls every container may make regardless of capabilities.
_ALWAYS = [
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
]

# Allowed only when the container holds the capability.
_BY_CAPABILITY: dict[str, tuple[str, ...]] = {
    "DAC_READ_SEARCH": ("open_by_handle_at",),
    "SYS_ADMIN": tuple(
        [
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ]
    ),
    "SYS_BOOT": ("reboot",),
    "SYS_CHROOT": ("chroot",),
    "SYS_MODULE": ("delete_module", "init_module", "finit_module"),
    "SYS_PACCT": ("acct",),
    "SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise"),
    "SYS_RAWIO": ("iopl", "ioperm"),
    "SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "SYS_TTY_CONFIG": ("vhangup",),
    "SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
    "SYSLOG": ("syslog",),
    "BPF": ("bpf",),
    "PERFMON": ("perf_event_open",),
}

_BY_ARCH: dict[str, tuple[str, ...]] = {
    "amd64": ("arch_prctl", "modify_ldt"),
    "arm64": (
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "sync_file_range2",
        "breakpoint",
        "cacheflush",
        "set_tls",
    ),
}

# Namespace-creating clone flags: without SYS_ADMIN, clone is allowed only when none is set.
_CLONE_NAMESPACE_FLAGS = 0x7E020000
_AF_VSOCK = 40
_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

_ARCH_NAMES = {"x86_64": "amd64", "aarch64": "arm64"}
# libseccomp names of the sub-architectures Docker adds next to the native one.
_SUB_ARCHES = {"amd64": ("x86", "x32"), "arm64": ("arm",)}


def native_arch() -> str:
    machine = os.uname().machine
    return _ARCH_NAMES.get(machine, machine)


def default_profile(capabilities: frozenset[str], arch: str | None = None) -> Profile:
    """Docker's default seccomp profile for a container holding ``capabilities``."""
    arch = arch or native_arch()
    allowed = list(_ALWAYS)
    for cap, names in _BY_CAPABILITY.items():
        if cap in capabilities:
            allowed.extend(n for n in names if n not in allowed)
    allowed.extend(n for n in _BY_ARCH.get(arch, ()) if n not in allowed)
    rules = [SyscallRule(tuple(allowed))]
    rules.append(SyscallRule(("socket",), args=(ArgCondition(0, "ne", _AF_VSOCK),)))
    rules.extend(SyscallRule(("personality",), args=(ArgCondition(0, "eq", p),)) for p in _PERSONALITIES)
    if "SYS_ADMIN" not in capabilities:
        clone_arg = 1 if arch.startswith("s390") else 0
        rules.append(
            SyscallRule(("clone",), args=(ArgCondition(clone_arg, "masked_eq", _CLONE_NAMESPACE_FLAGS, 0),))
        )
        # clone3 hides its flags in a struct seccomp cannot read; ENOSYS makes libc fall back to clone.
        rules.append(SyscallRule(("clone3",), action="errno", errno=errno_module.ENOSYS))
    return Profile(rules=tuple(rules), extra_arches=_SUB_ARCHES.get(arch, ()))


_DOCKER_ACTIONS = {
    "SCMP_ACT_ALLOW": "allow",
    "SCMP_ACT_ERRNO": "errno",
    "SCMP_ACT_KILL": "kill_thread",
    "SCMP_ACT_KILL_THREAD": "kill_thread",
    "SCMP_ACT_KILL_PROCESS": "kill_process",
    "SCMP_ACT_TRAP": "trap",
    "SCMP_ACT_LOG": "log",
}
_DOCKER_OPS = {
    "SCMP_CMP_NE": "ne",
    "SCMP_CMP_LT": "lt",
    "SCMP_CMP_LE": "le",
    "SCMP_CMP_EQ": "eq",
    "SCMP_CMP_GE": "ge",
    "SCMP_CMP_GT": "gt",
    "SCMP_CMP_MASKED_EQ": "masked_eq",
}
_DOCKER_ARCH_TO_LIBSECCOMP = {"SCMP_ARCH_X86": "x86", "SCMP_ARCH_X32": "x32", "SCMP_ARCH_ARM": "arm"}


def _docker_filter_applies(entry: dict[str, Any], caps: frozenset[str], arch: str) -> bool:
    includes = entry.get("includes") or {}
    excludes = entry.get("excludes") or {}
    inc_caps = {c.removeprefix("CAP_") for c in includes.get("caps") or []}
    exc_caps = {c.removeprefix("CAP_") for c in excludes.get("caps") or []}
    if inc_caps and not inc_caps <= caps:
        return False
    if exc_caps and exc_caps & caps:
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    return not (excludes.get("arches") and arch in excludes["arches"])


def profile_from_docker_json(text: str, capabilities: frozenset[str], arch: str | None = None) -> Profile:
    """Read a seccomp profile in Docker's JSON format, keeping the entries that apply to this
    capability set and architecture."""
    arch = arch or native_arch()
    try:
        import json  # only for a custom profile: the fork server loads no json otherwise

        doc = json.loads(text)
        default_action = _DOCKER_ACTIONS[doc.get("defaultAction", "SCMP_ACT_ERRNO")]
        default_errno = int(doc.get("defaultErrnoRet") or errno_module.EPERM)
        rules = []
        for entry in doc.get("syscalls") or []:
            if not _docker_filter_applies(entry, capabilities, arch):
                continue
            names = tuple(entry.get("names") or ([entry["name"]] if entry.get("name") else []))
            args = tuple(
                ArgCondition(
                    int(a["index"]), _DOCKER_OPS[a["op"]], int(a["value"]), int(a.get("valueTwo") or 0)
                )
                for a in entry.get("args") or []
            )
            rules.append(
                SyscallRule(
                    names,
                    action=_DOCKER_ACTIONS[entry["action"]],
                    errno=int(entry.get("errnoRet") or errno_module.EPERM),
                    args=args,
                )
            )
        sub_arches: list[str] = []
        for arch_map in doc.get("archMap") or []:
            for sub in arch_map.get("subArchitectures") or []:
                if sub in _DOCKER_ARCH_TO_LIBSECCOMP and _DOCKER_ARCH_TO_LIBSECCOMP[sub] in _SUB_ARCHES.get(
                    arch, ()
                ):
                    sub_arches.append(_DOCKER_ARCH_TO_LIBSECCOMP[sub])
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"seccomp profile: not a valid Docker seccomp profile: {exc}") from exc
    return Profile(default_action, default_errno, tuple(rules), tuple(dict.fromkeys(sub_arches)))


# --- libseccomp --------------------------------------------------------------------------------------


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


_SCMP_FLTATR_CTL_OPTIMIZE = 8
_OPS = {"ne": 1, "lt": 2, "le": 3, "eq": 4, "ge": 5, "gt": 6, "masked_eq": 7}


def _action_value(action: str, errno: int) -> int:
    if action == "allow":
        return 0x7FFF0000
    if action == "errno":
        return 0x00050000 | (errno & 0xFFFF)
    if action == "kill_process":
        return 0x80000000
    if action == "kill_thread":
        return 0x00000000
    if action == "trap":
        return 0x00030000
    if action == "log":
        return 0x7FFC0000
    raise PermanentError(f"seccomp: unknown action {action!r}")


class LibSeccomp:
    """The few libseccomp calls orc needs, through ctypes."""

    def __init__(self, path: str | None = None) -> None:
        import ctypes.util  # only to compile a profile not yet cached: it imports subprocess & co

        name = path or ctypes.util.find_library("seccomp") or "libseccomp.so.2"
        try:
            self._lib = ctypes.CDLL(name, use_errno=True)
        except OSError as exc:
            raise PermanentError(f"seccomp: cannot load libseccomp ({name}): install libseccomp2") from exc
        lib = self._lib
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_version.restype = ctypes.POINTER(_Version)

    def version(self) -> str:
        v = self._lib.seccomp_version().contents
        return f"{v.major}.{v.minor}.{v.micro}"

    def compile(self, profile: Profile) -> bytes:
        """Compile ``profile`` to the raw BPF program (an array of struct sock_filter)."""
        lib = self._lib
        default = _action_value(profile.default_action, profile.default_errno)
        ctx = lib.seccomp_init(default)
        if not ctx:
            raise PermanentError("seccomp: seccomp_init failed")
        try:
            # A binary tree of syscall numbers instead of a linear list: the kernel takes it in
            # ~0.3 ms instead of ~0.8 ms per container, and it checks each syscall in fewer steps.
            # libseccomp < 2.5 does not know the attribute; its linear program is still correct.
            lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_OPTIMIZE, 2)
            for arch in profile.extra_arches:
                token = lib.seccomp_arch_resolve_name(arch.encode())
                if token:
                    rc = lib.seccomp_arch_add(ctx, token)
                    if rc < 0 and -rc != errno_module.EEXIST:
                        raise PermanentError(f"seccomp: cannot add architecture {arch}: {os.strerror(-rc)}")
            for rule in profile.rules:
                action = _action_value(rule.action, rule.errno)
                if action == default:
                    continue
                conditions = (_ArgCmp * max(1, len(rule.args)))()
                for i, cond in enumerate(rule.args):
                    conditions[i] = _ArgCmp(cond.index, _OPS[cond.op], cond.value, cond.value_two)
                for name in rule.names:
                    number = lib.seccomp_syscall_resolve_name(name.encode())
                    if number == -1:  # not a syscall on this architecture
                        continue
                    rc = lib.seccomp_rule_add_array(ctx, action, number, len(rule.args), conditions)
                    if rc < 0:
                        raise PermanentError(f"seccomp: rule for {name} rejected: {os.strerror(-rc)}")
            import tempfile

            with tempfile.TemporaryFile() as out:
                rc = lib.seccomp_export_bpf(ctx, out.fileno())
                if rc < 0:
                    raise PermanentError(f"seccomp: export failed: {os.strerror(-rc)}")
                out.seek(0)
                return out.read()
        finally:
            lib.seccomp_release(ctx)


# Bumped when the compiled form changes (2: binary-tree optimized), so old cache files are unused.
_PROGRAM_FORMAT = "t2"


# Compiled programs shared by every lib root on the machine, beside the package's bytecode: a
# program depends only on its profile, the architecture and the compiled form (the key), and
# compiling the default profile through libseccomp costs ~20-30 ms of the fork server's time,
# which the first container of a new lib root waits for (a first `up -d` of 30 services was
# ~0.06 s slower with it).
# (Paths are strings here: the fork server imports this module, and pathlib is ~0.8 MiB of it.)
SHARED_DIRECTORY = os.path.join(os.path.dirname(os.path.realpath(__file__)), "__pycache__", "seccomp")


class BpfCache:
    """Compiled seccomp programs, in memory and under ``directory`` (one file per profile hash);
    a program not there is taken from ``shared`` (when given) before it is compiled, and a newly
    compiled one is written to both (to ``shared`` only when Python writes bytecode)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        library: LibSeccomp | None = None,
        shared: str | os.PathLike[str] | None = None,
    ) -> None:
        self.directory = os.fspath(directory)
        self.shared = None if shared is None else os.fspath(shared)
        self._library = library
        self._memory: dict[str, bytes] = {}
        self.compilations = 0

    @property
    def library(self) -> LibSeccomp:
        if self._library is None:
            self._library = LibSeccomp()
        return self._library

    def program(self, profile: Profile) -> bytes:
        key = f"{profile.key()}-{native_arch()}-{_PROGRAM_FORMAT}"
        cached = self._memory.get(key)
        if cached is not None:
            return cached
        path = os.path.join(self.directory, f"{key}.bpf")
        try:
            with open(path, "rb") as file:
                program = file.read()
        except FileNotFoundError:
            shared = self._shared_program(key)
            if shared is not None:
                program = shared
            else:
                program = self.library.compile(profile)
                self.compilations += 1
                if self.shared is not None and not sys.dont_write_bytecode:
                    with contextlib.suppress(OSError):
                        _write_atomically(os.path.join(self.shared, f"{key}.bpf"), program)
            _write_atomically(path, program)
        if not program or len(program) % 8:
            raise PermanentError(f"seccomp: cached program {path} is corrupt; remove it")
        self._memory[key] = program
        return program

    def _shared_program(self, key: str) -> bytes | None:
        if self.shared is None:
            return None
        try:
            with open(os.path.join(self.shared, f"{key}.bpf"), "rb") as file:
                program = file.read()
        except OSError:
            return None
        return program if program and not len(program) % 8 else None  # a bad one is compiled anew


def _write_atomically(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{os.path.splitext(path)[0]}.tmp{os.getpid()}"
    with open(tmp, "wb") as file:
        file.write(data)
    os.replace(tmp, path)
