"""Recording fakes of the network driver's side effects, for unit tests without root.

``RecordingLinkOps`` keeps a model of the links it was asked to make (so ``link_exists`` and
``delete_link`` behave like the kernel) and appends every call to ``calls`` in order.
``RecordingRunner`` stands in for ``nft``/``iptables``: it records argv and stdin, keeps the set of
nft tables that scripts created, and can be told what ``iptables -S FORWARD``
says about its policy (``forward_policy``) and whether a ``DOCKER-USER`` chain exists. Used by tests and by the
reconciler's tests through ``NetworkDriver(links=..., firewall=Firewall(RecordingRunner()))``.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import ConflictError, NotFoundError, PermanentError

from .firewall import CommandResult
from .netlink import ContainerIface, IfaceAddress, NetnsRef


@dataclass
class FakeLink:
    name: str
    kind: str
    netns: str | None = None
    master: str | None = None
    peer: str | None = None
    addresses: list[IfaceAddress] = field(default_factory=list)


class RecordingLinkOps:
    def __init__(self, routes: Sequence[str] = ("192.0.2.0/24",), fail_on: str | None = None) -> None:
        self.routes = list(routes)
        self.links: dict[str, FakeLink] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.fail_on = fail_on  # name of a method that raises, to test rollbacks
        self.forwarding = False  # net.ipv4.ip_forward
        self.on_host_routes: Callable[[], None] | None = None  # a hook, to interleave threads

    def _maybe_fail(self, method: str) -> None:
        if self.fail_on == method:
            raise PermanentError(f"injected failure in {method}")

    def host_routes(self) -> list[str]:
        """The given routes plus, as the kernel has them, those of the bridges' addresses."""
        self.calls.append(("host_routes",))
        own = [
            str(ipaddress.ip_network(f"{a.address}/{a.prefixlen}", strict=False))
            for link in list(self.links.values())
            if link.kind == "bridge"
            for a in link.addresses
        ]
        routes = list(self.routes) + [r for r in own if r not in self.routes]
        if self.on_host_routes is not None:
            self.on_host_routes()  # read, not yet returned: the window a bridge may appear in
        return routes

    def link_exists(self, name: str) -> bool:
        return name in self.links

    def release_netns(self, netns: str) -> None:
        """The namespace ``netns`` is torn down: the links in it, and their veth peers, go."""
        for name, link in list(self.links.items()):
            if link.netns == netns:
                self.links.pop(name, None)
                if link.peer:
                    self.links.pop(link.peer, None)

    def wait_gone(self, names: Sequence[str], timeout: float) -> list[str]:
        self.calls.append(("wait_gone", tuple(names)))
        return [n for n in names if n in self.links]

    def link_names(self) -> set[str]:
        return {name for name, link in self.links.items() if link.netns is None}

    def add_bridge(self, name: str, mtu: int, addresses: Sequence[IfaceAddress]) -> None:
        self.calls.append(("add_bridge", name, mtu, tuple(addresses)))
        self._maybe_fail("add_bridge")
        if name in self.links:
            raise ConflictError(f"creating bridge {name}: already exists")
        self.links[name] = FakeLink(name, "bridge", addresses=list(addresses))

    def delete_link(self, name: str) -> bool:
        self.calls.append(("delete_link", name))
        link = self.links.pop(name, None)
        if link is None:
            return False
        if link.peer:
            self.links.pop(link.peer, None)
        return True

    def add_veth(
        self, host_name: str, bridge: str, netns: NetnsRef, peer_name: str, mac: str, mtu: int
    ) -> None:
        self.calls.append(("add_veth", host_name, bridge, str(netns), peer_name, mac, mtu))
        self._maybe_fail("add_veth")
        if bridge not in self.links:
            raise NotFoundError(f"network link {bridge} does not exist")
        if host_name in self.links:
            raise ConflictError(f"creating veth {host_name}: already exists")
        key = f"{netns}/{peer_name}"
        self.links[host_name] = FakeLink(host_name, "veth", master=bridge, peer=key)
        self.links[key] = FakeLink(peer_name, "veth", netns=str(netns), peer=host_name)

    def configure_container(self, netns: NetnsRef, iface: ContainerIface) -> None:
        self.calls.append(("configure_container", str(netns), iface))
        self._maybe_fail("configure_container")
        link = self.links.get(f"{netns}/{iface.ifname}")
        if link is None:
            raise NotFoundError(f"network link {iface.ifname} does not exist in {netns}")
        link.addresses = list(iface.addresses)

    def loopback_up(self, netns: NetnsRef) -> None:
        self.calls.append(("loopback_up", str(netns)))

    def ensure_ipv4_forwarding(self) -> bool:
        changed = not self.forwarding
        self.forwarding = True
        return changed


class RecordingRunner:
    def __init__(
        self,
        programs: Sequence[str] = ("nft", "iptables"),
        forward_policy: str | None = None,
        docker_user_chain: bool = False,
    ) -> None:
        self.programs = set(programs)
        self.forward_policy = forward_policy
        self.docker_user_chain = docker_user_chain
        self.calls: list[tuple[tuple[str, ...], str | None]] = []
        self.tables: dict[str, str] = {}  # nft table name -> last script that defined it
        self.iptables_rules: list[tuple[str, ...]] = []

    def which(self, program: str) -> str | None:
        return f"/usr/sbin/{program}" if program in self.programs else None

    def run(self, argv: Sequence[str], input: str | None = None) -> CommandResult:
        args = tuple(argv)
        self.calls.append((args, input))
        if args[:3] == ("nft", "-f", "-"):
            assert input is not None
            for name in re.findall(r"^table inet (\S+) \{$", input, re.M):
                self.tables[name] = input
            return CommandResult(0, "", "")
        if args[:4] == ("nft", "delete", "table", "inet"):
            if self.tables.pop(args[4], None) is None:
                return CommandResult(1, "", "Error: No such file or directory")
            return CommandResult(0, "", "")
        if args[:3] == ("nft", "list", "tables"):
            return CommandResult(0, "".join(f"table inet {name}\n" for name in self.tables), "")
        if args[:4] == ("nft", "list", "table", "inet"):
            return CommandResult(0 if args[4] in self.tables else 1, self.tables.get(args[4], ""), "")
        if args[:1] == ("iptables-restore",):
            assert input is not None and "--noflush" in args
            lines = input.splitlines()
            assert lines[0] == "*filter" and lines[-1] == "COMMIT", input
            for line in lines[1:-1]:
                command, *rule = shlex.split(line)
                if command == "-D":
                    if tuple(rule) not in self.iptables_rules:
                        return CommandResult(1, "", f"iptables-restore: line failed: {line}")
                    self.iptables_rules.remove(tuple(rule))
                elif command == "-I":
                    self.iptables_rules.append(tuple(rule))
                else:
                    return CommandResult(1, "", f"fake runner does not know {line}")
            return CommandResult(0, "", "")
        if args[:1] == ("iptables",):
            rest = args[2:] if args[1:2] == ("-w",) else args[1:]
            if rest == ("-S", "FORWARD"):
                policy = (self.forward_policy or "accept").upper()
                return CommandResult(0, f"-P FORWARD {policy}\n", "")
            if rest[:3] == ("-n", "-L", "DOCKER-USER"):
                return CommandResult(0 if self.docker_user_chain else 1, "", "")
            if rest == ("-S",):
                policy = (self.forward_policy or "accept").upper()
                head = f"-P INPUT ACCEPT\n-P FORWARD {policy}\n-P OUTPUT ACCEPT\n"
                head += "-N DOCKER-USER\n" if self.docker_user_chain else ""
                return CommandResult(
                    0, head + "".join(f"-A {shlex.join(r)}\n" for r in self.iptables_rules), ""
                )
            if rest[:1] == ("-C",):
                return CommandResult(0 if tuple(rest[1:]) in self.iptables_rules else 1, "", "")
            if rest[:1] == ("-I",):
                self.iptables_rules.append(tuple(rest[1:]))
                return CommandResult(0, "", "")
            if rest[:1] == ("-D",):
                try:
                    self.iptables_rules.remove(tuple(rest[1:]))
                except ValueError:
                    return CommandResult(1, "", "iptables: Bad rule")
                return CommandResult(0, "", "")
        return CommandResult(1, "", f"fake runner does not know {' '.join(args)}")
