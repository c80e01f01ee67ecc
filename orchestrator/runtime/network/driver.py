"""The network driver: networks as Linux bridges, containers joined with veth pairs.

``NetworkDriver`` is what the reconciler calls (from a worker thread, see ``netlink``):

* ``create_network(spec)`` leases subnets (IPAM, under the state file lock), creates the bridge
  with the gateway addresses, installs orc's nftables table (masquerade unless ``internal``) and,
  only when a host firewall drops forwarded traffic, the accept shim (``firewall``). External
  networks must already exist (made by an orc project under the same root). Idempotent.
* ``connect(container, netns, endpoints)`` gives the container one veth per network, created
  directly in its namespace as eth0, eth1… (ordered by ``priority``, highest first), with MAC, MTU
  and addresses, lo up, the default route via the first network's gateway (none on an
  ``internal`` network), and registers its DNS names.
* ``disconnect(container)`` and ``remove_network(name)`` remove what ``connect`` and
  ``create_network`` made, and only that: the state file records every link, table, rule and lease.
* ``prepare_mode`` covers ``network_mode``: ``none`` brings lo up; ``host`` and ``container:``
  need no links (the runtime joins those namespaces).

All kernel work goes through ``LinkOps`` and ``Firewall`` (recording fakes in ``fake``), all
persistent state through a ``LeaseStore``; the DNS registry is shared with ``services``.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ConflictError, NotFoundError, OrcError, PermanentError

from . import ipam
from .dns import DnsRegistry
from .firewall import DnatRule, Firewall, SubprocessRunner, forward_shim
from .leases import FileLeaseStore, LeaseStore, NetworkState
from .naming import (
    bridge_name,
    check_ifname,
    container_ifname,
    host_veth_name,
    mac_for,
    nft_ports_table_name,
    nft_table_name,
)
from .netlink import ContainerIface, IfaceAddress, LinkOps, NetnsRef, PyrouteLinkOps
from .spec import Attachment, EndpointSpec, NetworkInfo, NetworkSpec, PortBinding

DEFAULT_MTU = 1500
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
# How long a released network namespace may take to be torn down (its veths with it) before
# they are deleted one by one.
NAMESPACE_TEARDOWN_WAIT = 1.0
# Taken by every state root on this host while it picks a subnet and makes the bridge for it.
HOST_SUBNET_LOCK = Path("/run/lock/orc-subnets.lock")


@dataclass(frozen=True)
class _Plan:
    """One endpoint as decided under the lock, before any link exists."""

    attachment: Attachment
    iface: ContainerIface
    bridge: str
    mtu: int
    had_lease: bool


def _prefix(subnet: str) -> int:
    """The prefix length of a subnet in canonical text (``10.0.0.0/24``)."""
    return int(subnet.rpartition("/")[2])


def _drop_attachments(state: NetworkState, container: str, networks: set[str]) -> None:
    """Forget ``container``'s attachments to ``networks`` (its entry too once none is left)."""
    kept = [a for a in state.attachments.get(container, []) if a.network not in networks]
    if kept:
        state.attachments[container] = kept
    else:
        state.attachments.pop(container, None)


def _opt_bool(value: str, key: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise PermanentError(f"driver_opts {key}: expected true or false, got {value!r}")


def _opt_mtu(value: str | None) -> int:
    if value is None:
        return DEFAULT_MTU
    try:
        mtu = int(value)
    except ValueError:
        mtu = 0
    if not 68 <= mtu <= 65535:
        raise PermanentError(f"driver_opts {OPT_MTU}: {value!r} is not an MTU between 68 and 65535")
    return mtu


def _side_by_side(*beside: Callable[[], None], here: Callable[[], None]) -> None:
    """Run each of ``beside`` in a thread of its own while ``here`` runs in this one; all finish
    before this returns, and the first failure (this thread's first) is raised here."""
    failures: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # re-raised in the caller's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(work,), name="orc-network-beside") for work in beside]
    for thread in threads:
        thread.start()
    try:
        here()
    finally:
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]


class NetworkDriver:
    def __init__(
        self,
        root: Path | None = None,
        links: LinkOps | None = None,
        firewall: Firewall | None = None,
        store: LeaseStore | None = None,
        dns: DnsRegistry | None = None,
        pools_v4: Sequence[ipam.PoolRange] = ipam.DEFAULT_POOLS_V4,
        pools_v6: Sequence[ipam.PoolRange] = ipam.DEFAULT_POOLS_V6,
        subnet_lock: Path | None = None,
    ) -> None:
        if store is None:
            if root is None:
                raise ValueError("NetworkDriver needs a state root or a store")
            store = FileLeaseStore(root)
        self.store = store
        self.links: LinkOps = links if links is not None else PyrouteLinkOps()
        self.firewall = firewall if firewall is not None else Firewall(SubprocessRunner())
        self.dns = dns if dns is not None else DnsRegistry()
        # Networks whose bridge and rules unbuild_ahead deleted, until remove_network forgets them.
        self._unbuilt: set[str] = set()
        self.pools_v4 = tuple(pools_v4)
        self.pools_v6 = tuple(pools_v6)
        # Host-wide, not per state root: another root (another user of orc on this host, a
        # parallel test session) sees this one's subnets only as routes, once the bridge exists.
        self.subnet_lock = subnet_lock or (HOST_SUBNET_LOCK if root is not None else None)

    # -- networks -----------------------------------------------------------------------------

    def create_network(self, spec: NetworkSpec) -> NetworkInfo:
        opts = dict(spec.driver_opts)
        with self.store.transaction() as state:
            known = state.networks.get(spec.name)
            if spec.external:
                if known is None:
                    raise NotFoundError(f"network {spec.name} declared as external, but could not be found")
                return known
            if known is not None:
                if self.links.link_exists(known.bridge):
                    return known
                # the bridge went away (someone deleted it): drop its rules, rebuild it
                self.firewall.remove_shim(known.firewall)
                if self.firewall.nft_available():
                    self.firewall.delete_table(nft_table_name(known.bridge))
                del state.networks[spec.name]
            bridge = check_ifname(
                opts.get(OPT_BRIDGE_NAME) or spec.bridge or bridge_name(spec.name), "bridge name"
            )
            owner = next((n for n in state.networks.values() if n.bridge == bridge), None)
            if owner is not None:
                raise ConflictError(
                    f"network {spec.name}: bridge {bridge} is already used by network {owner.name}"
                )
            if known is None and self.links.link_exists(bridge):
                raise ConflictError(f"network {spec.name}: a link named {bridge} exists and is not orc's")
            with self._host_subnets():
                return self._create_bridge_network(state, spec, opts, bridge)

    @contextlib.contextmanager
    def _host_subnets(self) -> Iterator[None]:
        """Held from reading the host's routes until the new bridge (and so its route) exists."""
        if self.subnet_lock is None:
            yield
            return
        try:
            self.subnet_lock.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.subnet_lock, "a")  # noqa: SIM115 - held across the yield
        except OSError:  # not root (no bridge could be made anyway): nothing to coordinate
            yield
            return
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield

    def _create_bridge_network(
        self, state: NetworkState, spec: NetworkSpec, opts: dict[str, str], bridge: str
    ) -> NetworkInfo:
        mtu = spec.mtu or _opt_mtu(opts.get(OPT_MTU))
        icc = _opt_bool(opts[OPT_ICC], OPT_ICC) if OPT_ICC in opts else True
        masquerade = _opt_bool(opts[OPT_MASQUERADE], OPT_MASQUERADE) if OPT_MASQUERADE in opts else True
        routes = [ipaddress.ip_network(r) for r in self.links.host_routes()]
        lease = ipam.reserve_network(state.ipam, spec, routes, self.pools_v4, self.pools_v6)
        info = NetworkInfo(
            name=spec.name,
            project=spec.project,
            bridge=bridge,
            subnets=tuple(s.subnet for s in lease.subnets),
            gateways=tuple(s.gateway for s in lease.subnets),
            ip_ranges=tuple(s.ip_range for s in lease.subnets),
            internal=spec.internal,
            enable_ipv6=spec.enable_ipv6,
            mtu=mtu,
            external=False,
            created=True,
            icc=icc,
        )
        info = self._build_network(info, masquerade)
        state.networks[spec.name] = info
        return info

    def _build_network(self, info: NetworkInfo, masquerade: bool) -> NetworkInfo:
        addresses = [
            IfaceAddress(gw, _prefix(sn)) for gw, sn in zip(info.gateways, info.subnets, strict=True)
        ]
        if not info.internal:
            # containers reach out (and published ports reach in) through the host's routing;
            # host-wide and left on at removal, as Docker does
            self.links.ensure_ipv4_forwarding()
        table = nft_table_name(info.bridge)
        shim: list[str] = []

        def bridge() -> None:
            self.links.add_bridge(info.bridge, info.mtu, addresses)

        def iptables_shim() -> None:
            listing = self.firewall.filter_rules()
            chain = self.firewall.forward_shim_chain(listing)
            if chain is not None:
                shim.extend(forward_shim(info.bridge, info.internal, chain))
                self.firewall.add_shim(shim, listing)

        def nft_table() -> None:
            nat_subnets = info.subnets if masquerade else ()
            self.firewall.apply_network(table, info.bridge, nat_subnets, info.internal, info.icc)

        try:
            if self.firewall.nft_available():
                # The nft table and the iptables shim name the bridge (by name: it need not exist
                # yet), nothing else: the three are made side by side (the rules are a process or
                # two each, ~5-15 ms, on the path of every first container).
                _side_by_side(iptables_shim, nft_table, here=bridge)
            else:
                bridge()
        except BaseException:
            self.firewall.remove_shim(shim)
            if self.firewall.nft_available():
                self.firewall.delete_table(table)
            self.links.delete_link(info.bridge)
            raise
        return NetworkInfo(**{**info.to_json(), "firewall": tuple(shim)})

    def _unbuild_network(self, info: NetworkInfo) -> None:
        """The iptables shim, the nft table and the bridge, all three side by side: they only
        name each other, and each takes ~10-45 ms (the bridge's deletion waits for RCU in the
        kernel, each rule change is an iptables-restore or nft process)."""

        def iptables_shim() -> None:
            self.firewall.remove_shim(info.firewall)

        def nft_table() -> None:
            if self.firewall.nft_available():
                self.firewall.delete_table(nft_table_name(info.bridge))

        def bridge() -> None:
            if info.created:
                self.links.delete_link(info.bridge)

        _side_by_side(iptables_shim, nft_table, here=bridge)

    def network(self, name: str) -> NetworkInfo:
        info = self.store.read().networks.get(name)
        if info is None:
            raise NotFoundError(f"network {name} not found")
        return info

    def networks(self, project: str | None = None) -> list[NetworkInfo]:
        return [
            n
            for _, n in sorted(self.store.read().networks.items())
            if project is None or n.project == project
        ]

    def remove_network(self, name: str, project: str | None = None) -> bool:
        """Remove a network orc created (an external one is only forgotten by its project, never
        deleted). False if there was nothing to remove; ConflictError while containers use it.

        An attachment whose host veth is gone uses nothing: its container's namespace is torn
        down, and the disconnect that would have dropped it never ran (its supervisor was
        killed between the container's remove and that teardown). It goes with the network."""
        with self.store.transaction() as state:
            info = state.networks.get(name)
            if info is None:
                return False
            if project is not None and info.project != project:
                return False  # another project's network that this one used as external
            live = self._live_users(state, name)
            if live:
                raise ConflictError(f"network {name} is in use by {', '.join(live)}")
            if name in self._unbuilt:
                self._unbuilt.discard(name)  # its links and rules went ahead (unbuild_ahead)
            else:
                self._unbuild_network(info)
            for container in [
                c for c, atts in state.attachments.items() if any(a.network == name for a in atts)
            ]:
                _drop_attachments(state, container, {name})
            ipam.release_network(state.ipam, name)
            del state.networks[name]
        self.dns.remove_network(name)
        return True

    def _live_users(self, state: NetworkState, name: str, leaving: Collection[str] = ()) -> list[str]:
        """Containers, but those ``leaving``, attached to network ``name`` by a host veth that
        still exists (one whose veth is gone went with its namespace: it uses nothing)."""
        return sorted(
            container
            for container, atts in state.attachments.items()
            if container not in leaving
            and any(a.network == name and self.links.link_exists(a.host_ifname) for a in atts)
        )

    def unbuild_ahead(self, name: str, project: str | None, leaving: Collection[str]) -> bool:
        """Delete the bridge and the firewall rules of network ``name`` now, if every container
        attached to it is in ``leaving`` (removed: the kernel is tearing their namespaces down)
        or has no host veth left. The bridge's deletion waits ~45 ms for RCU in the kernel and
        the rules are two processes; done here, beside the wait for those namespaces to go,
        instead of after it. The network's record and leases stay for :meth:`remove_network`,
        which then has nothing left to delete. False (and nothing done) otherwise."""
        with self.store.transaction() as state:
            info = state.networks.get(name)
            if info is None or not info.created or (project is not None and info.project != project):
                return False
            if self._live_users(state, name, leaving):
                return False
            self._unbuild_network(info)
            self._unbuilt.add(name)
        return True

    # -- containers ---------------------------------------------------------------------------

    def prepare_mode(self, mode: str, netns: NetnsRef | None) -> None:
        """``network_mode`` other than bridge networks: ``none`` gets only lo (up)."""
        if mode == "none":
            if netns is None:
                raise PermanentError("network_mode none needs the container's network namespace")
            self.links.loopback_up(netns)
        elif mode == "host" or mode.startswith(("container:", "service:")):
            return
        else:
            raise PermanentError(f"unsupported network_mode {mode!r}")

    def connect(
        self,
        container: str,
        netns: NetnsRef,
        endpoints: Sequence[EndpointSpec],
        dns_upstreams: Sequence[str] = (),
        exposed: Sequence[str] = (),
    ) -> list[Attachment]:
        """Join ``container`` (its namespace is ``netns``) to every network in ``endpoints``.

        Addresses are leased and the attachments recorded under the state lock; the links are
        made after it is released, so containers starting in parallel do not queue behind each
        other's netlink work. If building fails, what was made is deleted and the record undone.
        """
        ordered = sorted(endpoints, key=lambda e: -e.priority)
        with self.store.transaction() as state:
            existing = state.attachments.get(container, [])
            # a container that died and is started again: its veths went with its namespace, but
            # its leases are still recorded, so it gets its old addresses back
            stale = [a for a in existing if not self.links.link_exists(a.host_ifname)]
            if stale:
                existing = [a for a in existing if a not in stale]
                for att in stale:
                    self.dns.remove_container(container, att.network)
            plans: list[_Plan] = []
            # The default route goes through the first network (by priority) that is not
            # internal, as Docker's gateway choice: an internal network first does not leave
            # the container without one.
            routed = any(a.default_route for a in existing)
            for endpoint in ordered:
                if any(a.network == endpoint.network for a in existing) or any(
                    p.attachment.network == endpoint.network for p in plans
                ):
                    raise ConflictError(f"container {container} is already connected to {endpoint.network}")
                index = len(existing) + len(plans)
                plan = self._plan(state, container, endpoint, index, dns_upstreams, exposed, not routed)
                routed = routed or plan.attachment.default_route
                plans.append(plan)
            state.attachments[container] = existing + [p.attachment for p in plans]
        built: list[_Plan] = []
        try:
            for plan in plans:
                att = plan.attachment
                self.links.add_veth(att.host_ifname, plan.bridge, netns, att.ifname, att.mac, plan.mtu)
                built.append(plan)
                self.links.configure_container(netns, plan.iface)
        except BaseException:
            for plan in built:
                self.links.delete_link(plan.attachment.host_ifname)
            self._forget(container, plans)
            raise
        made = [p.attachment for p in plans]
        for att in made:
            self.dns.add(container, att.network, att.names, att.ipv4, att.ipv6, att.upstreams)
        return made

    def _forget(self, container: str, plans: Sequence[_Plan]) -> None:
        networks = {p.attachment.network for p in plans}
        with self.store.transaction() as state:
            _drop_attachments(state, container, networks)
            for plan in plans:
                if not plan.had_lease:
                    ipam.release_addresses(state.ipam, plan.attachment.network, container)

    def _plan(
        self,
        state: NetworkState,
        container: str,
        endpoint: EndpointSpec,
        index: int,
        upstreams: Sequence[str],
        exposed: Sequence[str],
        may_route: bool = True,
    ) -> _Plan:
        info = state.networks.get(endpoint.network)
        if info is None:
            raise NotFoundError(f"network {endpoint.network} not found (create it before connecting)")
        lease = state.ipam.networks.get(info.name)
        had_lease = lease is not None and container in lease.addresses.values()
        ipv4, ipv6 = ipam.lease_addresses(state.ipam, info.name, container, endpoint.ipv4, endpoint.ipv6)
        gw4 = next((g for g in info.gateways if ipam.ip_version(g) == 4), None)
        gw6 = next((g for g in info.gateways if ipam.ip_version(g) == 6), None)
        sub4 = next((s for s in info.subnets if ipam.ip_version(s) == 4), None)
        sub6 = next((s for s in info.subnets if ipam.ip_version(s) == 6), None)
        ifname = container_ifname(index)
        addresses = []
        if ipv4 and sub4:
            addresses.append(IfaceAddress(ipv4, _prefix(sub4)))
        if ipv6 and sub6:
            addresses.append(IfaceAddress(ipv6, _prefix(sub6)))
        route = may_route and not info.internal
        attachment = Attachment(
            network=info.name,
            container=container,
            ifname=ifname,
            host_ifname=host_veth_name(container, info.name),
            mac=endpoint.mac or mac_for(ipv4, f"{container}/{info.name}"),
            ipv4=ipv4,
            ipv4_prefix=_prefix(sub4) if ipv4 and sub4 else None,
            ipv6=ipv6,
            ipv6_prefix=_prefix(sub6) if ipv6 and sub6 else None,
            gateway4=gw4,
            gateway6=gw6,
            default_route=route,
            names=tuple(dict.fromkeys([*endpoint.dns_names, *endpoint.aliases])),
            upstreams=tuple(upstreams),
            exposed=tuple(exposed),
        )
        iface = ContainerIface(ifname, tuple(addresses), gw4, gw6, route)
        return _Plan(attachment, iface, info.bridge, endpoint.mtu or info.mtu, had_lease)

    def disconnect(self, container: str, namespace_released: bool = False) -> list[Attachment]:
        """Remove the container's veths, DNAT table, DNS names and address leases.

        With ``namespace_released`` the caller has let go of the container's network namespace
        and its processes are dead: the kernel's namespace teardown takes the veths with it, in
        one batch for every namespace going at the time, so they are waited for rather than
        deleted one by one (each delete holds the kernel's RTNL lock through an RCU grace period,
        ~5-10 ms, and a project's removes queued behind each other). What is still there after
        :data:`NAMESPACE_TEARDOWN_WAIT` (a process of another container sharing the namespace
        keeps it) is deleted. The links and the table go outside the state lock; only then are
        the attachments and leases dropped, so a delete that fails leaves them recorded for
        the retry.
        """
        names, table = self.store.inspect(
            lambda state: (
                [att.host_ifname for att in state.attachments.get(container, [])],
                state.dnat_tables.get(container),
            )
        )
        if namespace_released and names:
            names = self.links.wait_gone(names, NAMESPACE_TEARDOWN_WAIT)
        errors: list[OrcError] = []
        for name in names:
            try:
                self.links.delete_link(name)
            except OrcError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        if table is not None and self.firewall.nft_available():
            self.firewall.delete_table(table)
        with self.store.transaction() as state:
            atts = state.attachments.pop(container, [])
            for att in atts:
                ipam.release_addresses(state.ipam, att.network, container)
            state.dnat_tables.pop(container, None)
        self.dns.remove_container(container)
        return atts

    def attachments(self, container: str) -> list[Attachment]:
        return list(self.store.read().attachments.get(container, []))

    def restore_dns(self) -> int:
        """Refill the DNS registry from the state file (a restarted supervisor); returns entries."""
        count = 0
        for container, atts in self.store.read().attachments.items():
            for a in atts:
                self.dns.add(container, a.network, a.names, a.ipv4, a.ipv6, a.upstreams)
                count += 1
        return count

    def prune(self) -> tuple[list[str], list[str]]:
        """Remove orc firewall leftovers whose bridge is gone (shim rules tagged ``orc:<bridge>``,
        tables ``orc_<bridge>``), whichever root made them; returns (rules, tables) removed."""
        rules, tables = self.firewall.orphans(self.links.link_names())
        self.firewall.remove_shim(rules)
        for table in tables:
            self.firewall.delete_table(table)
        return rules, tables

    # -- kernel port forwarding (optional, next to the proxy) ---------------------------------

    def publish_dnat(self, container: str, bindings: Sequence[PortBinding]) -> str | None:
        """DNAT rules for ``bindings`` in orc's per-container table; None when nft is missing."""
        if not self.firewall.nft_available() or not bindings:
            return None
        table = nft_ports_table_name(container)
        rules = [
            DnatRule(
                None if b.host_ip in ("0.0.0.0", "::") else b.host_ip,
                b.host_port,
                b.protocol,
                b.container_ip,
                b.target,
            )
            for b in bindings
            if ipaddress.ip_address(b.container_ip).version == 4 and b.host_ip != "::"
        ]
        with self.store.transaction() as state:
            self.firewall.apply_dnat(table, rules)
            state.dnat_tables[container] = table
        return table
