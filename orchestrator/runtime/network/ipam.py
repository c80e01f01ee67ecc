"""IP address management, pure: subnets for networks and addresses for endpoints.

The book (``IpamBook``) holds every network's subnets and every endpoint's lease; it is plain
data, loaded and saved under a file lock by ``leases.LeaseStore`` so two projects (two
supervisors) never hand out the same subnet or address, and a restarted supervisor gets the same
addresses back (a lease is keyed by its owner). Host routes are read by the driver and passed in:
a pool subnet that overlaps a routed prefix (docker0, the uplink) is skipped like Docker does.
Called by ``driver.NetworkDriver``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import ConflictError, PermanentError

from .spec import IpamPool, NetworkSpec

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class PoolRange:
    """A base prefix carved into equal subnets of ``size`` bits (Docker's default-address-pools)."""

    base: str
    size: int

    def candidates(self) -> Iterable[IPNetwork]:
        net = ipaddress.ip_network(self.base)
        return net.subnets(new_prefix=self.size)


# Docker's default-address-pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s
DEFAULT_POOLS_V4: tuple[PoolRange, ...] = (
    *(PoolRange(f"172.{second}.0.0/16", 16) for second in range(17, 32)),
    PoolRange("192.168.0.0/16", 20),
)
DEFAULT_POOLS_V6: tuple[PoolRange, ...] = (PoolRange("fd6f:7263::/48", 64),)


@dataclass
class SubnetLease:
    subnet: str
    gateway: str
    ip_range: str | None = None
    reserved: list[str] = field(default_factory=list)


@dataclass
class NetworkLease:
    """A network's subnets (at most one per family is used for endpoints) and address leases."""

    subnets: list[SubnetLease]
    # ip -> owner; every key is written as ``str(ip_address(...))``, the canonical form, so a
    # candidate address is looked up by its string without parsing every lease.
    addresses: dict[str, str] = field(default_factory=dict)

    def subnet_for(self, version: int) -> SubnetLease | None:
        for s in self.subnets:
            if ip_version(s.subnet) == version:
                return s
        return None


def ip_version(text: str) -> int:
    """4 or 6 for an address or network in canonical text (only IPv6 has colons): parsing it
    for this was ~10 us, several times per container connected."""
    return 6 if ":" in text else 4


@dataclass
class IpamBook:
    networks: dict[str, NetworkLease] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "networks": {
                name: {
                    "subnets": [
                        {
                            "subnet": s.subnet,
                            "gateway": s.gateway,
                            "ip_range": s.ip_range,
                            "reserved": list(s.reserved),
                        }
                        for s in lease.subnets
                    ],
                    "addresses": dict(sorted(lease.addresses.items())),
                }
                for name, lease in sorted(self.networks.items())
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IpamBook:
        book = cls()
        for name, raw in data.get("networks", {}).items():
            book.networks[name] = NetworkLease(
                subnets=[
                    SubnetLease(s["subnet"], s["gateway"], s.get("ip_range"), list(s.get("reserved", [])))
                    for s in raw["subnets"]
                ],
                addresses=dict(raw.get("addresses", {})),
            )
        return book

    def all_subnets(self, exclude: str | None = None) -> list[IPNetwork]:
        return [
            ipaddress.ip_network(s.subnet)
            for name, lease in self.networks.items()
            if name != exclude
            for s in lease.subnets
        ]


def _overlaps(net: IPNetwork, others: Iterable[IPNetwork]) -> bool:
    return any(net.version == o.version and net.overlaps(o) for o in others)


def choose_subnet(pools: Sequence[PoolRange], taken: Sequence[IPNetwork]) -> IPNetwork:
    """The first pool subnet that overlaps nothing in ``taken`` (other networks and host routes)."""
    for pool in pools:
        for candidate in pool.candidates():
            if not _overlaps(candidate, taken):
                return candidate
    bases = ", ".join(p.base for p in pools)
    raise PermanentError(f"no free subnet left in the address pools ({bases}); remove unused networks")


def _first_host(net: IPNetwork) -> IPAddress:
    if net.num_addresses == 1:
        return net.network_address
    return net.network_address + 1


def _subnet_from_pool(pool: IpamPool, network: str) -> SubnetLease:
    where = f"network {network}"
    try:
        subnet = ipaddress.ip_network(pool.subnet, strict=True)
    except ValueError as exc:
        raise PermanentError(f"{where}: invalid subnet {pool.subnet!r}: {exc}") from exc
    gateway: IPAddress
    if pool.gateway:
        try:
            gateway = ipaddress.ip_address(pool.gateway)
        except ValueError as exc:
            raise PermanentError(f"{where}: invalid gateway {pool.gateway!r}") from exc
        if gateway not in subnet:
            raise PermanentError(f"{where}: gateway {gateway} is not in subnet {subnet}")
    else:
        gateway = _first_host(subnet)
    ip_range: str | None = None
    if pool.ip_range:
        try:
            rng = ipaddress.ip_network(pool.ip_range, strict=True)
        except ValueError as exc:
            raise PermanentError(f"{where}: invalid ip_range {pool.ip_range!r}: {exc}") from exc
        if rng.version != subnet.version or not rng.subnet_of(subnet):  # type: ignore[arg-type]
            raise PermanentError(f"{where}: ip_range {rng} is not inside subnet {subnet}")
        ip_range = str(rng)
    reserved = []
    for aux in pool.aux_addresses:
        try:
            addr = ipaddress.ip_address(aux)
        except ValueError as exc:
            raise PermanentError(f"{where}: invalid aux address {aux!r}") from exc
        if addr not in subnet:
            raise PermanentError(f"{where}: aux address {addr} is not in subnet {subnet}")
        reserved.append(str(addr))
    return SubnetLease(str(subnet), str(gateway), ip_range, reserved)


def reserve_network(
    book: IpamBook,
    spec: NetworkSpec,
    host_routes: Sequence[IPNetwork] = (),
    pools_v4: Sequence[PoolRange] = DEFAULT_POOLS_V4,
    pools_v6: Sequence[PoolRange] = DEFAULT_POOLS_V6,
) -> NetworkLease:
    """Give ``spec`` its subnets (configured or from the pools) and record them in ``book``.

    A network already in the book keeps what it has, so re-creating after a restart is stable.
    Configured subnets may overlap host routes (the user asked for them) but never another
    orc network; pool subnets avoid both.
    """
    existing = book.networks.get(spec.name)
    if existing is not None:
        return existing
    others = book.all_subnets(exclude=spec.name)
    subnets = [_subnet_from_pool(pool, spec.name) for pool in spec.pools]
    for configured in subnets:
        net = ipaddress.ip_network(configured.subnet)
        if _overlaps(net, others):
            owner = next(
                name
                for name, nl in book.networks.items()
                for s in nl.subnets
                if _overlaps(net, [ipaddress.ip_network(s.subnet)])
            )
            raise ConflictError(f"network {spec.name}: subnet {net} overlaps network {owner}")
    versions = {ipaddress.ip_network(s.subnet).version for s in subnets}
    taken = [*others, *host_routes]
    if 4 not in versions:
        net = choose_subnet(pools_v4, taken)
        subnets.insert(0, SubnetLease(str(net), str(_first_host(net))))
    if spec.enable_ipv6 and 6 not in versions:
        net = choose_subnet(pools_v6, taken)
        subnets.append(SubnetLease(str(net), str(_first_host(net))))
    made = NetworkLease(subnets=subnets)
    book.networks[spec.name] = made
    return made


def release_network(book: IpamBook, network: str) -> None:
    book.networks.pop(network, None)


def _unusable(subnet: SubnetLease) -> set[IPAddress]:
    net = ipaddress.ip_network(subnet.subnet)
    bad: set[IPAddress] = {net.network_address, ipaddress.ip_address(subnet.gateway)}
    if net.version == 4 and net.prefixlen < 31:
        bad.add(net.broadcast_address)
    bad.update(ipaddress.ip_address(a) for a in subnet.reserved)
    return bad


def _lease_one(
    lease: NetworkLease, subnet: SubnetLease, owner: str, requested: str | None, network: str
) -> str:
    net = ipaddress.ip_network(subnet.subnet)
    mine = [ip for ip, who in lease.addresses.items() if who == owner and ipaddress.ip_address(ip) in net]
    if requested is not None:
        try:
            addr = ipaddress.ip_address(requested)
        except ValueError as exc:
            raise PermanentError(f"network {network}: invalid address {requested!r}") from exc
        if addr not in net:
            raise PermanentError(f"network {network}: address {addr} is not in subnet {net}")
        if addr in _unusable(subnet):
            raise ConflictError(f"network {network}: address {addr} is reserved (gateway or network)")
        holder = lease.addresses.get(str(addr))
        if holder is not None and holder != owner:
            raise ConflictError(f"network {network}: address {addr} is already in use by {holder}")
        for old in mine:
            del lease.addresses[old]
        lease.addresses[str(addr)] = owner
        return str(addr)
    if mine:
        return mine[0]
    scope = ipaddress.ip_network(subnet.ip_range) if subnet.ip_range else net
    bad = _unusable(subnet)
    if scope.version == 4:
        # The lowest free address, walked as integers: an IPv4Address and its text per
        # candidate made a burst of n leases cost O(n²) objects (~2 ms a lease at 100).
        unusable = {int(address) for address in bad}
        for value in range(int(scope.network_address), int(scope.broadcast_address) + 1):
            if value not in unusable and (text := _ipv4_text(value)) not in lease.addresses:
                lease.addresses[text] = owner
                return text
    else:
        candidate: IPAddress
        for candidate in scope:
            if candidate not in bad and (text := str(candidate)) not in lease.addresses:
                lease.addresses[text] = owner
                return text
    raise PermanentError(f"network {network}: no free address left in {scope}")


def _ipv4_text(value: int) -> str:
    """``str(IPv4Address(value))``, without the object."""
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def lease_addresses(
    book: IpamBook,
    network: str,
    owner: str,
    ipv4: str | None = None,
    ipv6: str | None = None,
) -> tuple[str | None, str | None]:
    """Lease (or return the existing lease of) ``owner``'s IPv4 and, when the network has an IPv6
    subnet, IPv6 address. A requested static address must be inside the subnet and free."""
    lease = book.networks.get(network)
    if lease is None:
        raise PermanentError(f"network {network} has no address space (was it created?)")
    sub4 = lease.subnet_for(4)
    sub6 = lease.subnet_for(6)
    if ipv6 is not None and sub6 is None:
        raise PermanentError(f"network {network}: ipv6_address {ipv6} given but IPv6 is not enabled")
    addr4 = _lease_one(lease, sub4, owner, ipv4, network) if sub4 else None
    addr6 = _lease_one(lease, sub6, owner, ipv6, network) if sub6 else None
    return addr4, addr6


def release_addresses(book: IpamBook, network: str, owner: str) -> list[str]:
    """Drop ``owner``'s leases on ``network``; returns the addresses released."""
    lease = book.networks.get(network)
    if lease is None:
        return []
    gone = [ip for ip, who in lease.addresses.items() if who == owner]
    for ip in gone:
        del lease.addresses[ip]
    return gone
