"""The doctor's kernel probe: an overlay mount and bridge/veth links, in private namespaces.

Run as ``python -m orchestrator.runtime.doctor.sandbox SCRATCH_DIR`` by ``host.LocalHost`` (a
fresh, single-threaded process, which ``unshare(CLONE_NEWNS)`` requires). The first thing it does
is unshare its mount and network namespaces and make every mount private; if that fails it
touches nothing and reports why. Everything it creates afterwards (the overlay mount on
``SCRATCH_DIR/merged``, a bridge and a veth pair) lives in those namespaces and disappears when
the process exits, even if it is killed. The caller owns ``SCRATCH_DIR`` (an empty directory it
created and removes). Prints one JSON ``SandboxReport`` on stdout.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from orchestrator.errors import OrcError
from orchestrator.runtime.doctor.checks import SandboxReport
from orchestrator.runtime.process.kernel import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    MNT_DETACH,
    MS_PRIVATE,
    MS_REC,
    Kernel,
    LinuxKernel,
)

BRIDGE = "orcdoctor0"
VETH_HOST = "orcdoctor1"
VETH_PEER = "orcdoctor2"


def enter_private_namespaces(kernel: Kernel) -> None:
    """New mount and network namespaces, with no mount propagating back to the host."""
    kernel.unshare(CLONE_NEWNS | CLONE_NEWNET)
    kernel.mount(None, "/", None, MS_REC | MS_PRIVATE, None)


def probe_overlay(kernel: Kernel, scratch: Path) -> str | None:
    """Mount an overlay, write through it, delete a lower file; None if all of it behaved."""
    lower, upper, work, merged = (scratch / name for name in ("lower", "upper", "work", "merged"))
    for directory in (lower, upper, work, merged):
        directory.mkdir()
    (lower / "from-lower").write_text("lower\n")
    try:
        kernel.mount(
            "overlay", str(merged), "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}"
        )
    except OSError as exc:
        return f"mount: {exc.strerror or exc}"
    try:
        (merged / "written").write_text("upper\n")
        if not (upper / "written").is_file():
            return "a file written through the mount did not land in the upper dir"
        os.unlink(merged / "from-lower")
        whiteout = os.lstat(upper / "from-lower")
        if not (stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0):
            return "deleting a lower file left no whiteout in the upper dir"
        if not (lower / "from-lower").exists():
            return "deleting through the mount changed the lower dir"
        return None
    except OSError as exc:
        return f"writing through the mount: {exc.strerror or exc}"
    finally:
        try:
            kernel.umount(str(merged), MNT_DETACH)
        except OSError:
            pass  # the mount namespace dies with this process anyway


def probe_links() -> tuple[str | None, str | None]:
    """Create a bridge and a veth enslaved to it with the network driver's netlink calls."""
    from orchestrator.runtime.network.netlink import IfaceAddress, PyrouteLinkOps

    links = PyrouteLinkOps()
    try:
        links.add_bridge(BRIDGE, 1500, [IfaceAddress("10.255.255.1", 30)])
    except (OrcError, OSError) as exc:
        return str(exc), "not tried (no bridge)"
    try:
        links.add_veth(VETH_HOST, BRIDGE, "/proc/self/ns/net", VETH_PEER, "02:00:00:0d:0c:01", 1500)
    except (OrcError, OSError) as exc:
        return None, str(exc)
    return None, None


def run(scratch: Path, kernel: Kernel) -> SandboxReport:
    try:
        enter_private_namespaces(kernel)
    except OSError as exc:
        why = f"cannot enter private namespaces: {exc.strerror or exc}"
        return SandboxReport(why, why, why, str(scratch))
    overlay = probe_overlay(kernel, scratch)
    bridge, veth = probe_links()
    return SandboxReport(overlay, bridge, veth, str(scratch))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m orchestrator.runtime.doctor.sandbox SCRATCH_DIR", file=sys.stderr)
        return 2
    scratch = Path(argv[0])
    if not scratch.is_dir() or any(scratch.iterdir()):
        print(f"{scratch} must be an existing empty directory", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        why = "needs root"
        report = SandboxReport(why, why, why, str(scratch))
    else:
        report = run(scratch, LinuxKernel())
    print(json.dumps(report.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
