"""Build and read orc's isolation probe (``probe.c``); shared by the kernel tests and by
``bench/security_probe.py``, which runs the same probe under orc and ``docker run``.

``build_probe(dest)`` compiles the probe statically; ``probe_args(marker)`` gives its arguments
(the host's namespace inodes so it can refuse to run on the host, a real disk's device numbers,
and a host-only marker path); ``parse`` reads its output and ``EXPECTED`` is what a container with
Docker's defaults must show.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("probe.c")

DENIED = "EPERM"
EXPECTED: dict[str, str] = {
    "cap_eff": "00000000a80425fb",
    "cap_bnd": "00000000a80425fb",
    "seccomp": "2",
    "sys_mount": DENIED,
    "sys_umount": DENIED,
    "sys_unshare": DENIED,
    "sys_setns": DENIED,
    "sys_keyctl": DENIED,
    "sys_bpf": DENIED,
    "sys_perf_event_open": DENIED,
    "sys_init_module": DENIED,
    "sys_finit_module": DENIED,
    "sys_delete_module": DENIED,
    "sys_reboot": DENIED,
    "sys_sethostname": DENIED,
    "write_proc_sys": "EROFS",
    "proc_sys": "ro",
    "sys": "ro",
    "mkdir_sys": "EROFS",
    "masked_keys": "empty",
    "masked_timer_list": "empty",
    "masked_sys_firmware": "empty",
    "masked_proc_acpi": "empty",
    "mknod_disk": "OK",
    "open_disk": DENIED,
    "chroot": "OK",
    "chroot_escape": "contained",
    "host_marker": "hidden",
}


def probe_problem() -> str | None:
    if shutil.which("gcc") is None:
        return "gcc is not installed (apt-get install gcc libc6-dev)"
    if not Path("/usr/lib/x86_64-linux-gnu/libc.a").exists() and not list(Path("/usr/lib").glob("*/libc.a")):
        return "static libc is missing (apt-get install libc6-dev)"
    return None


def build_probe(dest: Path) -> Path:
    subprocess.run(["gcc", "-static", "-O1", "-Wall", "-o", str(dest), str(SOURCE)], check=True)
    return dest


def host_disk() -> tuple[int, int]:
    """Major and minor of the first whole disk in /proc/partitions."""
    for line in Path("/proc/partitions").read_text().splitlines()[2:]:
        fields = line.split()
        if len(fields) == 4:
            return int(fields[0]), int(fields[1])
    raise RuntimeError("no block device in /proc/partitions")


def probe_args(marker: Path) -> list[str]:
    major, minor = host_disk()
    inodes = [str(os.stat(f"/proc/self/ns/{kind}").st_ino) for kind in ("pid", "mnt", "uts")]
    return [*inodes, str(major), str(minor), str(marker)]


def parse(output: str) -> dict[str, str]:
    values = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def mismatches(values: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """Checks whose value differs from ``EXPECTED``, plus the pid-namespace check."""
    wrong: dict[str, tuple[str, str | None]] = {
        key: (want, values.get(key)) for key, want in EXPECTED.items() if values.get(key) != want
    }
    if int(values.get("max_pid", "999999")) > 64 or int(values.get("processes", "999")) > 8:
        wrong["host_pids_hidden"] = (
            "max_pid <= 64, processes <= 8",
            f"{values.get('max_pid')}/{values.get('processes')}",
        )
    return wrong
