"""nftables rules for networks and published ports: planned purely, applied through ``nft``.

Every network gets orc's own table ``inet orc_<bridge>``, created and deleted with the network:
a masquerade rule for its subnets unless ``internal``, a forward chain that drops new connections
into the bridge from anywhere else (other networks are isolated from each other, as in Docker;
DNAT'd published ports excepted), all traffic leaving or entering an internal network, and, with
``enable_icc=false``, traffic between its containers.
Each container with ``dnat`` ports gets a table ``inet orcp_<hash>`` with DNAT rules (the optional
kernel path next to the userland proxy; loopback traffic always goes to the proxy).

Host firewalls that set the iptables ``FORWARD`` policy to drop (Docker does, and with
``br_netfilter`` loaded that also drops traffic *between containers on one bridge*) cannot be
overridden from another nftables table: a drop anywhere is final. In that case, and only then,
``forward_shim`` plans ``iptables`` accept rules for orc's bridge in ``DOCKER-USER`` (the chain
Docker keeps for users) or ``FORWARD``; they are recorded and deleted with the network.

The planning functions are pure; ``Firewall`` runs them through an injected ``CommandRunner``
(``SubprocessRunner`` for real, ``fake.RecordingRunner`` in unit tests). Called by the driver.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from orchestrator.errors import PermanentError


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class CommandRunner(Protocol):
    def which(self, program: str) -> str | None: ...

    def run(self, argv: Sequence[str], input: str | None = None) -> CommandResult: ...


class SubprocessRunner:
    def which(self, program: str) -> str | None:
        return shutil.which(program)

    def run(self, argv: Sequence[str], input: str | None = None) -> CommandResult:
        try:
            done = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PermanentError(f"running {argv[0]}: {exc}") from exc
        return CommandResult(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class DnatRule:
    host_ip: str | None
    host_port: int
    protocol: str
    container_ip: str
    target: int


def _q(name: str) -> str:
    return json.dumps(name)  # nft accepts double-quoted interface names


def _replacing(table: str) -> list[str]:
    """The first lines of a script that replaces the rules of ``table`` in one transaction: the
    table is made if missing and emptied of its rules, then the script's chains and rules go in
    (a chain declared again as it was is kept). Deleting the table instead made each commit wait
    for the kernel's RCU grace period, ~10 ms of every network's creation here (16 vs 5 ms)."""
    return [f"add table inet {table}", f"flush table inet {table}", f"table inet {table} {{"]


def network_ruleset(table: str, bridge: str, subnets: Sequence[str], internal: bool, icc: bool = True) -> str:
    """The nft script (atomic replace) for one network's table."""
    lines = _replacing(table)
    if not internal:
        lines.append("  chain postrouting {")
        lines.append("    type nat hook postrouting priority srcnat; policy accept;")
        for subnet in subnets:
            family = "ip" if ipaddress.ip_network(subnet).version == 4 else "ip6"
            lines.append(f"    {family} saddr {subnet} oifname != {_q(bridge)} masquerade")
        lines.append("  }")
    lines.append("  chain forward {")
    lines.append("    type filter hook forward priority filter; policy accept;")
    if internal:
        lines.append(f"    iifname {_q(bridge)} oifname != {_q(bridge)} drop")
        lines.append(f"    oifname {_q(bridge)} iifname != {_q(bridge)} drop")
    else:
        # like Docker's isolation chains: nothing outside this bridge (another orc network, the
        # uplink) opens connections into it, except what a published port's DNAT let in
        lines.append(
            f"    oifname {_q(bridge)} iifname != {_q(bridge)} ct state new ct status & dnat != dnat drop"
        )
    if not icc:
        lines.append(f"    iifname {_q(bridge)} oifname {_q(bridge)} drop")
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dnat_ruleset(table: str, rules: Sequence[DnatRule]) -> str:
    """The nft script for one container's DNAT table (IPv4 only; IPv6 goes through the proxy)."""
    lines = _replacing(table)
    for chain, hook, prio in (("prerouting", "prerouting", "dstnat"), ("output", "output", "-100")):
        lines.append(f"  chain {chain} {{")
        lines.append(f"    type nat hook {hook} priority {prio}; policy accept;")
        for r in rules:
            if r.host_ip is not None and ipaddress.ip_address(r.host_ip).version != 4:
                continue
            if r.host_ip is not None and ipaddress.ip_address(r.host_ip).is_loopback:
                continue
            match = (
                f"ip daddr {r.host_ip}" if r.host_ip and r.host_ip != "0.0.0.0" else "fib daddr type local"
            )
            if chain == "output":
                match = "ip daddr != 127.0.0.0/8 " + match
            lines.append(
                f"    {match} {r.protocol} dport {r.host_port} counter dnat ip to {r.container_ip}:{r.target}"
            )
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def forward_shim(bridge: str, internal: bool, chain: str) -> list[str]:
    """iptables rule specs (``CHAIN arg...``) that let orc's bridge traffic past a drop policy."""
    comment = ["-m", "comment", "--comment", f"orc:{bridge}"]
    specs = [["-i", bridge, "-o", bridge, "-j", "ACCEPT", *comment]]
    if not internal:
        specs.append(["-i", bridge, "!", "-o", bridge, "-j", "ACCEPT", *comment])
        specs.append(
            [
                "-o",
                bridge,
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED,DNAT",
                "-j",
                "ACCEPT",
                *comment,
            ]
        )
    return [" ".join([chain, *s]) for s in specs]


class Firewall:
    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner
        self._nft: bool | None = None

    def nft_available(self) -> bool:
        if self._nft is None:
            self._nft = self.runner.which("nft") is not None
        return self._nft

    def _nft_apply(self, script: str, what: str) -> None:
        result = self.runner.run(["nft", "-f", "-"], input=script)
        if result.returncode != 0:
            raise PermanentError(f"nftables rules for {what} were refused: {result.stderr.strip()}")

    def apply_network(
        self, table: str, bridge: str, subnets: Sequence[str], internal: bool, icc: bool
    ) -> None:
        self._nft_apply(network_ruleset(table, bridge, subnets, internal, icc), f"network bridge {bridge}")

    def apply_dnat(self, table: str, rules: Sequence[DnatRule]) -> None:
        self._nft_apply(dnat_ruleset(table, rules), f"published ports ({table})")

    def delete_table(self, table: str) -> None:
        result = self.runner.run(["nft", "delete", "table", "inet", table])
        if result.returncode != 0 and "No such file" not in result.stderr:
            raise PermanentError(f"deleting nftables table {table}: {result.stderr.strip()}")

    def table_exists(self, table: str) -> bool:
        return self.runner.run(["nft", "list", "table", "inet", table]).returncode == 0

    def filter_rules(self) -> list[str] | None:
        """``iptables -S`` of the filter table (policies, chains, rules), one line each; None
        without a working iptables (then no shim is needed, or none could be added). One
        process: the shim's decisions are all read from it."""
        if self.runner.which("iptables") is None:
            return None
        listed = self.runner.run(["iptables", "-w", "-S"])
        return listed.stdout.splitlines() if listed.returncode == 0 else None

    def forward_shim_chain(self, listing: list[str] | None = None) -> str | None:
        """The iptables chain to put accept rules in, or None when the FORWARD policy accepts.

        Asked through ``iptables`` itself so it holds for the nft and the legacy backends;
        ``listing`` is a :meth:`filter_rules` already read (else it is read here)."""
        lines = listing if listing is not None else self.filter_rules()
        if lines is None or "-P FORWARD DROP" not in lines:
            return None
        return "DOCKER-USER" if "-N DOCKER-USER" in lines else "FORWARD"

    def add_shim(self, specs: Sequence[str], listing: list[str] | None = None) -> None:
        """Insert the rule ``specs`` (``CHAIN arg...``, tagged ``--comment orc:<bridge>``) in one
        ``iptables-restore`` that first deletes the rules already carrying those tags (left by
        a run that lost its bridge): a rebuilt network never stacks duplicates, and a partial
        set never survives. ``listing`` as for :meth:`forward_shim_chain`."""
        if not specs:
            return
        tags = {spec.split("--comment ", 1)[1].split(" ", 1)[0] for spec in specs if "--comment " in spec}
        lines = listing if listing is not None else self.filter_rules()
        stale = []
        for line in lines or []:
            words = shlex.split(line)
            if words[:1] == ["-A"] and "--comment" in words and words[words.index("--comment") + 1] in tags:
                stale.append(shlex.join(["-D", *words[1:]]))
        script = "*filter\n" + "".join(f"{rule}\n" for rule in stale)
        script += "".join(f"-I {spec}\n" for spec in specs) + "COMMIT\n"
        result = self.runner.run(["iptables-restore", "-w", "--noflush"], input=script)
        if result.returncode != 0:
            raise PermanentError(f"adding firewall rules {list(specs)}: {result.stderr.strip()}")

    def orphans(self, links: set[str]) -> tuple[list[str], list[str]]:
        """orc's shim rules and network tables whose bridge is not among ``links`` (left behind
        by a run that lost its bridge without removing the network). DNAT tables are not judged."""
        from .naming import nft_table_name

        rules: list[str] = []
        if self.runner.which("iptables") is not None:
            listed = self.runner.run(["iptables", "-w", "-S"])
            for line in listed.stdout.splitlines() if listed.returncode == 0 else []:
                words = shlex.split(line)
                if words[:1] != ["-A"] or "--comment" not in words:
                    continue
                comment = words[words.index("--comment") + 1]
                if comment.startswith("orc:") and comment[4:] not in links:
                    rules.append(" ".join(words[1:]))
        tables: list[str] = []
        if self.nft_available():
            live = {nft_table_name(link) for link in links}
            listed = self.runner.run(["nft", "list", "tables"])
            for line in listed.stdout.splitlines() if listed.returncode == 0 else []:
                words = line.split()
                if (
                    len(words) == 3
                    and words[1] == "inet"
                    and words[2].startswith("orc_")
                    and words[2] not in live
                ):
                    tables.append(words[2])
        return rules, tables

    def remove_shim(self, specs: Sequence[str]) -> None:
        """Delete the rule ``specs`` in one ``iptables-restore`` (an ``iptables`` process each
        took ~10 ms of every network's removal). It is all or nothing: should one of them be
        gone already, the others are deleted one by one."""
        if not specs:
            return
        script = "*filter\n" + "".join(f"-D {spec}\n" for spec in specs) + "COMMIT\n"
        if self.runner.run(["iptables-restore", "-w", "--noflush"], input=script).returncode == 0:
            return
        for spec in specs:
            chain, *args = spec.split(" ")
            self.runner.run(["iptables", "-w", "-D", chain, *args])
