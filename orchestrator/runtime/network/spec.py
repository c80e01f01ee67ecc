"""The network driver's own input and output types: what to build and what was built.

The reconciler translates Compose model objects into these specs; the driver never sees the
Compose model. Everything here is plain frozen data that round-trips through JSON (``to_json`` /
``from_json``) so the driver can record what it made in its state file and remove exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Transport = Literal["tcp", "udp"]


@dataclass(frozen=True)
class IpamPool:
    """One ``ipam.config`` entry: a subnet and, optionally, its gateway and a narrower dynamic range."""

    subnet: str
    gateway: str | None = None
    ip_range: str | None = None
    aux_addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkSpec:
    """A Compose network as the driver needs it.

    ``name`` is the full network name (``<project>_<network>`` or the ``name:`` override);
    ``bridge`` forces the kernel bridge name (``com.docker.network.bridge.name``), otherwise one is
    derived from ``name``. ``pools`` empty means "allocate from the address pool".
    """

    project: str
    name: str
    bridge: str | None = None
    pools: tuple[IpamPool, ...] = ()
    internal: bool = False
    enable_ipv6: bool = False
    mtu: int | None = None
    driver_opts: tuple[tuple[str, str], ...] = ()
    external: bool = False
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PortSpec:
    """One published port in Compose's canonical long form.

    ``published`` is ``None`` for a random host port, ``"8080"`` for one port, ``"8000-8010"``
    for "any free port of this range". ``host_ip`` ``None`` means every address (IPv4 and IPv6).
    """

    target: int
    published: str | None = None
    host_ip: str | None = None
    protocol: Transport = "tcp"


@dataclass(frozen=True)
class EndpointSpec:
    """One container's attachment to one network.

    ``dns_names`` are the names other containers on the network resolve to this endpoint (service
    name, container name, hostname, ``<service>.<project>``); ``aliases`` are the network's
    ``aliases``. ``priority`` orders attachments: the highest one carries the default route.
    """

    network: str
    ipv4: str | None = None
    ipv6: str | None = None
    mac: str | None = None
    aliases: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    priority: int = 0
    mtu: int | None = None


@dataclass(frozen=True)
class NetworkInfo:
    """A network the driver created or adopted: what the rest of orc needs to know about it."""

    name: str
    project: str
    bridge: str
    subnets: tuple[str, ...]
    gateways: tuple[str, ...]
    ip_ranges: tuple[str | None, ...]
    internal: bool
    enable_ipv6: bool
    mtu: int
    external: bool
    created: bool  # False when the bridge existed already (external): removal leaves it alone
    icc: bool = True
    firewall: tuple[str, ...] = field(default=())  # host firewall shims installed (see firewall.py)

    def to_json(self) -> dict[str, Any]:
        # Flat fields only (str, int, bool, tuples of str): a copy of them is the JSON object;
        # dataclasses.asdict's deep copy was most of a lease transaction's cost.
        return dict(vars(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkInfo:
        return cls(
            name=data["name"],
            project=data["project"],
            bridge=data["bridge"],
            subnets=tuple(data["subnets"]),
            gateways=tuple(data["gateways"]),
            ip_ranges=tuple(data["ip_ranges"]),
            internal=data["internal"],
            enable_ipv6=data["enable_ipv6"],
            mtu=data["mtu"],
            external=data["external"],
            created=data["created"],
            icc=data.get("icc", True),
            firewall=tuple(data.get("firewall", ())),
        )


@dataclass(frozen=True)
class Attachment:
    """What ``connect`` built: the interface in the container and its addresses."""

    network: str
    container: str
    ifname: str
    host_ifname: str
    mac: str
    ipv4: str | None
    ipv4_prefix: int | None
    ipv6: str | None
    ipv6_prefix: int | None
    gateway4: str | None
    gateway6: str | None
    default_route: bool
    names: tuple[str, ...] = ()  # DNS names (dns_names + aliases), restored into the resolver
    upstreams: tuple[str, ...] = ()  # the container's own ``dns:`` servers
    exposed: tuple[str, ...] = ()  # ``expose`` entries, recorded for discovery only

    def to_json(self) -> dict[str, Any]:
        # Flat fields only (str, int, bool, tuples of str): a copy of them is the JSON object;
        # dataclasses.asdict's deep copy was most of a lease transaction's cost.
        return dict(vars(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attachment:
        fields = dict(data)
        for key in ("names", "upstreams", "exposed"):
            fields[key] = tuple(fields.get(key, ()))
        return cls(**fields)


@dataclass(frozen=True)
class PortBinding:
    """A published port as actually bound on the host (what ``orc port`` prints)."""

    container: str
    target: int
    protocol: Transport
    host_ip: str
    host_port: int
    container_ip: str

    def __str__(self) -> str:
        host = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        return f"{host}:{self.host_port}"
