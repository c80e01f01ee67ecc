"""Test root filesystems built from Debian's busybox-static (no registry, no network).

``build_busybox_rootfs(dest)`` makes a minimal one-binary rootfs: /bin/busybox with a symlink per
applet, /etc/passwd and /etc/group with root, nobody and a test user (uid 1000), and the empty
directories a container runtime mounts over (/proc, /sys, /dev, /tmp, /etc/hosts ...).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BUSYBOX = Path("/bin/busybox")

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
tester:x:1000:
extra:x:2000:tester
nogroup:x:65534:
"""


def busybox_problem() -> str | None:
    """Why a busybox rootfs cannot be built here, or None."""
    if not BUSYBOX.exists():
        return "busybox-static is not installed (apt-get install busybox-static)"
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True)
    if out.returncode != 0:
        return "/bin/busybox does not run"
    return None


def build_busybox_rootfs(dest: Path) -> Path:
    """Create a busybox rootfs in ``dest`` (created if missing) and return it."""
    dest.mkdir(parents=True, exist_ok=True)
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "home/tester",
        "var/run",
        "run",
    ):
        (dest / d).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if not link.exists() and applet != "busybox":
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text(PASSWD)
    (dest / "etc" / "group").write_text(GROUP)
    for f in ("hosts", "hostname", "resolv.conf"):
        (dest / "etc" / f).touch()
    return dest
