"""Kernel names for orc's links and nftables tables, derived deterministically (pure).

Linux interface names hold at most 15 bytes, so the bridge for ``<project>_<network>`` is
``orc`` + 12 hex digits of a hash of the full name (like Docker's ``br-<id>``), the host end of a
container's veth is ``orcv`` + 11 hex digits of a hash of (container, network). The driver records
the names it derived, so a later change of this scheme never orphans a link. Called by the driver.
"""

from __future__ import annotations

import re

from orchestrator.errors import PermanentError
from orchestrator.hashing import sha256_hex

IFNAMSIZ = 15
_VALID_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def _digest(*parts: str) -> str:
    return sha256_hex("\0".join(parts).encode())


def bridge_name(network_name: str) -> str:
    """The kernel bridge name for a network's full name (``<project>_<network>``)."""
    return "orc" + _digest("bridge", network_name)[:12]


def host_veth_name(container: str, network_name: str) -> str:
    """The host end of the veth joining ``container`` to ``network_name``."""
    return "orcv" + _digest("veth", container, network_name)[:11]


def container_ifname(index: int) -> str:
    """``eth0``, ``eth1``… in attachment order."""
    return f"eth{index}"


def nft_table_name(bridge: str) -> str:
    """orc's own nftables table for one network's rules."""
    return "orc_" + re.sub(r"[^A-Za-z0-9_]", "_", bridge)


def nft_ports_table_name(container: str) -> str:
    """orc's own nftables table for one container's DNAT rules."""
    return "orcp_" + _digest("ports", container)[:12]


def check_ifname(name: str, what: str = "interface name") -> str:
    """Reject names the kernel would refuse, with a message naming the bad value."""
    if not _VALID_IFNAME.match(name) or name in (".", ".."):
        raise PermanentError(
            f"invalid {what} {name!r}: at most {IFNAMSIZ} characters of letters, digits, '_', '-', '.'"
        )
    return name


def mac_for(ipv4: str | None, seed: str) -> str:
    """A locally administered unicast MAC: from the IPv4 address like Docker (02:42:a.b.c.d),
    else from a hash of ``seed``."""
    if ipv4 is not None:
        octets = [int(x) for x in ipv4.split(".")]
        return "02:42:" + ":".join(f"{o:02x}" for o in octets)
    raw = bytes.fromhex(_digest("mac", seed)[:12])
    first = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in bytes([first]) + raw[1:])
