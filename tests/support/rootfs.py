"""Test root filesystems built from Debian's busybox-static (no registry, no network).

``build_busybox_rootfs(dest)`` makes a minimal one-binary rootfs: /bin/busybox with a symlink per
applet, /etc/passwd and /etc/group with root, nobody and a test user (uid 1000), and the empty
directories a container runtime mounts over (/proc, /sys, /dev, /tmp, /etc/hosts ...). The tree is
built by scripts/pack-rootfs-image.py (the quickstart's image), so there is one implementation;
this module only adds the test user. Used by tests/conftest.py's ``busybox_rootfs`` and bench/*.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

BUSYBOX = Path("/bin/busybox")
PACKER = Path(__file__).resolve().parents[2] / "scripts" / "pack-rootfs-image.py"

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
    """Create a busybox rootfs in ``dest`` (created if missing) and return it: the one
    scripts/pack-rootfs-image.py packs for the quickstart, plus the test user and groups."""
    _packer().build_busybox_rootfs(dest)
    (dest / "home" / "tester").mkdir(parents=True, exist_ok=True)
    (dest / "etc" / "passwd").write_text(PASSWD)
    (dest / "etc" / "group").write_text(GROUP)
    return dest


def _packer() -> ModuleType:
    """scripts/pack-rootfs-image.py as a module (its name is not an importable one)."""
    spec = importlib.util.spec_from_file_location("pack_rootfs_image", PACKER)
    assert spec is not None and spec.loader is not None, f"cannot load {PACKER}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
