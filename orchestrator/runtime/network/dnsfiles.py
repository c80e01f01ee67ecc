"""A container's /etc/resolv.conf and /etc/hosts contents, and the host's resolvers (pure).

On an orc network the container asks orc's resolver on its first network's gateway, like Docker's
127.0.0.11: ``resolv.conf`` has that one nameserver, ``dns_search`` as ``search`` and ``dns_opt``
as ``options``; the service's ``dns:`` servers become that resolver's upstreams for the container
(see ``dns.DnsRegistry``), again as Docker does. With ``network_mode: host`` or ``none`` (or no
resolver) the file lists the ``dns:`` servers, else the host's. The runtime bind-mounts the texts
this module returns. Called by the reconciler/runtime glue and by ``dns``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.errors import PermanentError


@dataclass(frozen=True)
class HostResolvConf:
    nameservers: tuple[str, ...]
    search: tuple[str, ...]
    options: tuple[str, ...]


def parse_resolv_conf(text: str) -> HostResolvConf:
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        key, _, rest = line.partition(" ")
        values = rest.split()
        if key == "nameserver" and values:
            try:
                nameservers.append(str(ipaddress.ip_address(values[0].split("%")[0])))
            except ValueError:
                continue
        elif key in ("search", "domain"):
            search = values
        elif key == "options":
            options.extend(values)
    return HostResolvConf(tuple(nameservers), tuple(search), tuple(options))


def resolv_conf(
    host: HostResolvConf,
    resolver: str | None,
    dns: Sequence[str] = (),
    dns_search: Sequence[str] = (),
    dns_opt: Sequence[str] = (),
) -> str:
    """The container's resolv.conf. ``resolver`` is orc's resolver address (the first network's
    gateway) or None for host/none network modes."""
    if resolver is not None:
        servers: Sequence[str] = [resolver]
    elif dns:
        servers = dns
    else:
        # a loopback resolver of the host (systemd-resolved) is unreachable from a container
        # namespace, but with network_mode: host it is the host's own namespace
        servers = host.nameservers
    search = list(dns_search) if dns_search else list(host.search)
    options = list(dns_opt) if dns_opt else list(host.options)
    lines = [f"nameserver {s}" for s in servers]
    if search and search != ["."]:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def _host_line(address: str, names: Sequence[str]) -> str:
    return f"{address}\t{' '.join(names)}"


def hosts_file(
    hostname: str,
    addresses: Sequence[str],
    aliases: Sequence[str] = (),
    extra_hosts: Sequence[str] = (),
    host_gateway: str | None = None,
    ipv6: bool = True,
) -> str:
    """The container's /etc/hosts: localhost, its own addresses named ``hostname`` (+ ``aliases``
    such as the container name), then ``extra_hosts`` (``name:ip`` or ``name=ip``; the value
    ``host-gateway`` means ``host_gateway``)."""
    lines = [_host_line("127.0.0.1", ["localhost"])]
    if ipv6:
        lines += [
            _host_line("::1", ["localhost", "ip6-localhost", "ip6-loopback"]),
            _host_line("fe00::", ["ip6-localnet"]),
            _host_line("ff00::", ["ip6-mcastprefix"]),
            _host_line("ff02::1", ["ip6-allnodes"]),
            _host_line("ff02::2", ["ip6-allrouters"]),
        ]
    names = [hostname, *[a for a in aliases if a != hostname]]
    for address in addresses:
        lines.append(_host_line(address, names))
    for entry in extra_hosts:
        name, ip = _split_extra_host(entry)
        if ip == "host-gateway":
            if host_gateway is None:
                raise PermanentError(f"extra_hosts {entry!r}: no host gateway known for this container")
            ip = host_gateway
        lines.append(_host_line(ip, [name]))
    return "\n".join(lines) + "\n"


def _split_extra_host(entry: str) -> tuple[str, str]:
    for sep in ("=", ":"):
        if sep in entry:
            name, _, ip = entry.partition(sep)
            ip = ip.strip().strip("[]")
            if ip != "host-gateway":
                try:
                    ip = str(ipaddress.ip_address(ip))
                except ValueError as exc:
                    raise PermanentError(f"extra_hosts {entry!r}: {ip!r} is not an IP address") from exc
            return name.strip(), ip
    raise PermanentError(f"extra_hosts {entry!r}: expected NAME:IP or NAME=IP")
