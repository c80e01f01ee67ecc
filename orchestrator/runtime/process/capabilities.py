"""Linux capabilities: names, numbers, Docker's default set, and the set a container ends up with.

Pure; called by the start sequence (``sequence.py``) and by seccomp profile selection, which keys
Docker's capability-gated syscall rules on the same set.
"""

from __future__ import annotations

from orchestrator.errors import PermanentError

CAPABILITY_NUMBERS: dict[str, int] = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "DAC_READ_SEARCH": 2,
    "FOWNER": 3,
    "FSETID": 4,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "SETPCAP": 8,
    "LINUX_IMMUTABLE": 9,
    "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11,
    "NET_ADMIN": 12,
    "NET_RAW": 13,
    "IPC_LOCK": 14,
    "IPC_OWNER": 15,
    "SYS_MODULE": 16,
    "SYS_RAWIO": 17,
    "SYS_CHROOT": 18,
    "SYS_PTRACE": 19,
    "SYS_PACCT": 20,
    "SYS_ADMIN": 21,
    "SYS_BOOT": 22,
    "SYS_NICE": 23,
    "SYS_RESOURCE": 24,
    "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26,
    "MKNOD": 27,
    "LEASE": 28,
    "AUDIT_WRITE": 29,
    "AUDIT_CONTROL": 30,
    "SETFCAP": 31,
    "MAC_OVERRIDE": 32,
    "MAC_ADMIN": 33,
    "SYSLOG": 34,
    "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36,
    "AUDIT_READ": 37,
    "PERFMON": 38,
    "BPF": 39,
    "CHECKPOINT_RESTORE": 40,
}
ALL_CAPABILITIES = frozenset(CAPABILITY_NUMBERS)

# Docker's 14 (moby oci/caps/defaults.go).
DEFAULT_CAPABILITIES = frozenset(
    {
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "NET_RAW",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    }
)


def normalize(name: str) -> str:
    """``cap_net_admin`` / ``CAP_NET_ADMIN`` / ``NET_ADMIN`` → ``NET_ADMIN``; ``ALL`` stays."""
    upper = name.strip().upper()
    return upper.removeprefix("CAP_")


def effective_capabilities(
    add: tuple[str, ...] | list[str],
    drop: tuple[str, ...] | list[str],
    privileged: bool = False,
    known: frozenset[str] = ALL_CAPABILITIES,
) -> frozenset[str]:
    """The capability set of the container, following Docker: privileged gets every capability
    the kernel knows; otherwise start from the default 14, drop (``ALL`` drops all), then add
    (``ALL`` adds all), so ``cap_drop: [ALL]`` + ``cap_add: [NET_ADMIN]`` leaves just NET_ADMIN."""
    if privileged:
        return known
    adds = [normalize(c) for c in add]
    drops = [normalize(c) for c in drop]
    unknown = sorted({c for c in adds + drops if c != "ALL" and c not in ALL_CAPABILITIES})
    if unknown:
        raise PermanentError(f"unknown capabilities: {', '.join(unknown)}")
    caps = set() if "ALL" in drops else set(DEFAULT_CAPABILITIES) - set(drops)
    if "ALL" in adds:
        caps |= known
    else:
        caps |= set(adds)
    return frozenset(c for c in caps if c in known)


def mask(caps: frozenset[str]) -> int:
    """The 64-bit mask the kernel uses (as in /proc/<pid>/status CapEff)."""
    value = 0
    for cap in caps:
        value |= 1 << CAPABILITY_NUMBERS[cap]
    return value


def last_cap_from_kernel(text: str) -> frozenset[str]:
    """The capabilities this kernel knows, from the content of /proc/sys/kernel/cap_last_cap."""
    last = int(text.strip())
    return frozenset(name for name, number in CAPABILITY_NUMBERS.items() if number <= last)


def bounding_set_from_status(status_text: str) -> frozenset[str]:
    """The capabilities in this process's bounding set (``CapBnd`` of /proc/self/status): all a
    container could ever get from us. Sandboxed hosts may lack some (e.g. SYS_RESOURCE)."""
    for line in status_text.splitlines():
        if line.startswith("CapBnd:"):
            bits = int(line.split()[1], 16)
            return frozenset(name for name, number in CAPABILITY_NUMBERS.items() if bits & (1 << number))
    return ALL_CAPABILITIES
