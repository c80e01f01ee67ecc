"""Links, addresses and routes through netlink (pyroute2), behind the ``LinkOps`` Protocol.

``PyrouteLinkOps`` is the real thing: one cached host-side netlink socket per thread, and for a
container a netlink socket opened *inside* its network namespace (``setns`` on this thread, open
the socket, ``setns`` back: a socket stays in the namespace it was created in), so there is no
helper process. The container end of each veth is created directly in the container's namespace
(``peer`` with ``net_ns_fd``), which is several times faster than create-then-move.

pyroute2 is imported lazily (CLI cold start), and only its ``iproute`` modules: its package
``__init__`` imports every family it supports (IPDB, NDB, wireless, ...), ~0.1 s and ~6 MiB of a
supervisor that never uses them (see :func:`_iproute_class`). Its synchronous API runs its own event loop, so
call these methods from a worker thread (``anyio.to_thread.run_sync``), never from inside a
running event loop. ``fake.RecordingLinkOps`` records the same calls for unit tests.
Called by ``driver.NetworkDriver``.
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import importlib.util
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.errors import NotFoundError, OrcError, PermanentError, TemporaryError

CLONE_NEWNET = 0x40000000
IFA_F_NODAD = 0x02
NETLINK_ROUTE = 0
LOOPBACK_INDEX = 1  # lo is always ifindex 1 in a network namespace

NetnsRef = str | int  # a path like /proc/<pid>/ns/net, or an open fd to one


_PYROUTE2_LOCK = threading.Lock()


def _iproute_class() -> Any:
    """``pyroute2.IPRoute`` without running ``pyroute2/__init__.py``.

    The package is registered unexecuted, so importing ``pyroute2.iproute.linux`` loads only what
    that module needs. Anyone who later asks the package itself for a name (``from pyroute2
    import NDB``) gets the whole package run then, through the module ``__getattr__``.
    """
    with _PYROUTE2_LOCK:
        if "pyroute2" not in sys.modules:
            spec = importlib.util.find_spec("pyroute2")
            if spec is not None and spec.loader is not None:
                sys.modules["pyroute2"] = _deferred_package(spec)
        from pyroute2.iproute.linux import IPRoute

    return IPRoute


def _deferred_package(spec: Any) -> Any:
    package = importlib.util.module_from_spec(spec)
    executed = False

    def complete(name: str) -> Any:
        nonlocal executed
        if name.startswith("__"):
            raise AttributeError(name)
        # ``from pyroute2 import config`` (inside pyroute2) asks for a submodule: just load it.
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:
            return importlib.import_module(f"pyroute2.{name}")
        if not executed:
            executed = True
            spec.loader.exec_module(package)
            if name in package.__dict__:
                return package.__dict__[name]
        raise AttributeError(f"module 'pyroute2' has no attribute {name!r}")

    package.__getattr__ = complete  # type: ignore[method-assign]
    return package


@dataclass(frozen=True)
class IfaceAddress:
    address: str
    prefixlen: int


@dataclass(frozen=True)
class ContainerIface:
    """How the container end of a veth is configured inside its namespace."""

    ifname: str
    addresses: tuple[IfaceAddress, ...]
    gateway4: str | None
    gateway6: str | None
    default_route: bool


class LinkOps(Protocol):
    def host_routes(self) -> list[str]:
        """Destination prefixes routed on the host (no default routes), e.g. ``172.17.0.0/16``."""
        ...

    def link_exists(self, name: str) -> bool: ...

    def link_names(self) -> set[str]:
        """Every link name in the host namespace."""
        ...

    def add_bridge(self, name: str, mtu: int, addresses: Sequence[IfaceAddress]) -> None:
        """Create a bridge, give it ``addresses`` (the gateways), bring it up."""
        ...

    def delete_link(self, name: str) -> bool:
        """Delete a link (a veth takes its peer with it); False if it did not exist."""
        ...

    def add_veth(
        self, host_name: str, bridge: str, netns: NetnsRef, peer_name: str, mac: str, mtu: int
    ) -> None:
        """A veth whose host end is enslaved to ``bridge`` and up, and whose other end is created
        directly in ``netns`` as ``peer_name`` with ``mac`` and ``mtu``."""
        ...

    def configure_container(self, netns: NetnsRef, iface: ContainerIface) -> None:
        """Inside ``netns``: addresses on ``iface``, it and lo up, default routes if asked."""
        ...

    def loopback_up(self, netns: NetnsRef) -> None: ...

    def ensure_ipv4_forwarding(self) -> bool:
        """Turn on ``net.ipv4.ip_forward`` if it is off (as Docker does); True if it changed."""
        ...


_libc: Any = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def _netns_fd(netns: NetnsRef) -> Iterator[int]:
    if isinstance(netns, int):
        yield netns
        return
    try:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NotFoundError(f"network namespace {netns} does not exist (did the container exit?)") from exc
    try:
        yield fd
    finally:
        os.close(fd)


def netlink_socket_in(netns: NetnsRef) -> socket.socket:
    """A NETLINK_ROUTE socket living in ``netns``, opened without leaving this process."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _netns_fd(netns) as target:
            _setns(target)
            try:
                return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
            finally:
                _setns(own)  # failing to come back would leave this thread in the container
    finally:
        os.close(own)


def _map_netlink(exc: Exception, what: str) -> OrcError:
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    if code == errno.EEXIST:
        return PermanentError(f"{what}: already exists")
    if code in (errno.EBUSY, errno.EAGAIN):
        return TemporaryError(f"{what}: {exc}", retry_after=0.5)
    if code == errno.EPERM:
        return PermanentError(f"{what}: permission denied (needs CAP_NET_ADMIN)")
    return PermanentError(f"{what}: {exc}")


class PyrouteLinkOps:
    def __init__(self) -> None:
        self._bridge_index: dict[str, int] = {}  # saves a lookup per veth; dropped on failure

    @contextmanager
    def _host(self) -> Iterator[Any]:
        # one socket per call (~0.3 ms): pyroute2's sync API keeps per-thread event loop state,
        # and sockets cached per worker thread would leak when anyio retires the thread
        IPRoute = _iproute_class()

        ipr = IPRoute()
        try:
            yield ipr
        finally:
            ipr.close()

    @contextmanager
    def _in(self, netns: NetnsRef) -> Iterator[Any]:
        IPRoute = _iproute_class()

        sock = netlink_socket_in(netns)
        ipr = IPRoute(fileno=sock.detach())
        try:
            yield ipr
        finally:
            ipr.close()

    def host_routes(self) -> list[str]:
        prefixes: list[str] = []
        with self._host() as ipr:
            routes = [
                (route["dst_len"], route.get_attr("RTA_DST"))
                for family in (socket.AF_INET, socket.AF_INET6)
                for route in ipr.get_routes(family=family, table=254)
            ]
        for length, dst in routes:
            if length == 0 or dst is None:
                continue
            try:
                prefixes.append(str(ipaddress.ip_network(f"{dst}/{length}", strict=False)))
            except ValueError:
                continue
        return sorted(set(prefixes))

    def link_exists(self, name: str) -> bool:
        with self._host() as ipr:
            return bool(ipr.link_lookup(ifname=name))

    def link_names(self) -> set[str]:
        with self._host() as ipr:
            return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}

    def _index(self, ipr: Any, name: str) -> int:
        found = ipr.link_lookup(ifname=name)
        if not found:
            raise NotFoundError(f"network link {name} does not exist")
        return int(found[0])

    def add_bridge(self, name: str, mtu: int, addresses: Sequence[IfaceAddress]) -> None:
        try:
            with self._host() as ipr:
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu, br_forward_delay=0, br_stp_state=0)
                idx = self._index(ipr, name)
                for a in addresses:
                    ipr.addr("add", index=idx, address=a.address, prefixlen=a.prefixlen, flags=IFA_F_NODAD)
                ipr.link("set", index=idx, state="up")
        except OrcError:
            raise
        except Exception as exc:
            raise _map_netlink(exc, f"creating bridge {name}") from exc

    def delete_link(self, name: str) -> bool:
        self._bridge_index.pop(name, None)
        with self._host() as ipr:
            found = ipr.link_lookup(ifname=name)
            if not found:
                return False
            try:
                ipr.link("del", index=found[0])
            except Exception as exc:
                if getattr(exc, "code", None) == errno.ENODEV:
                    return False
                raise _map_netlink(exc, f"deleting link {name}") from exc
        return True

    def add_veth(
        self, host_name: str, bridge: str, netns: NetnsRef, peer_name: str, mac: str, mtu: int
    ) -> None:
        cached = bridge in self._bridge_index
        try:
            with self._host() as ipr, _netns_fd(netns) as fd:
                master = self._bridge_index.get(bridge) or self._index(ipr, bridge)
                ipr.link(
                    "add",
                    ifname=host_name,
                    kind="veth",
                    mtu=mtu,
                    master=master,
                    state="up",
                    peer={"ifname": peer_name, "net_ns_fd": fd, "address": mac, "mtu": mtu},
                )
        except OrcError:
            raise
        except Exception as exc:
            self._bridge_index.pop(bridge, None)
            if cached:  # the bridge may have been re-created under a new index: look again
                self.delete_link(host_name)
                return self.add_veth(host_name, bridge, netns, peer_name, mac, mtu)
            raise _map_netlink(exc, f"creating veth {host_name} for {peer_name}") from exc
        self._bridge_index[bridge] = master

    def configure_container(self, netns: NetnsRef, iface: ContainerIface) -> None:
        try:
            with self._in(netns) as ipr:
                ipr.link("set", index=LOOPBACK_INDEX, state="up")
                idx = self._index(ipr, iface.ifname)
                for a in iface.addresses:
                    ipr.addr("add", index=idx, address=a.address, prefixlen=a.prefixlen, flags=IFA_F_NODAD)
                ipr.link("set", index=idx, state="up")
                if iface.default_route and iface.gateway4:
                    ipr.route("add", dst="0.0.0.0/0", gateway=iface.gateway4, oif=idx)
                if iface.default_route and iface.gateway6:
                    ipr.route("add", dst="::/0", gateway=iface.gateway6, oif=idx, family=socket.AF_INET6)
        except OrcError:
            raise
        except Exception as exc:
            raise _map_netlink(exc, f"configuring {iface.ifname} in {netns}") from exc

    def loopback_up(self, netns: NetnsRef) -> None:
        try:
            with self._in(netns) as ipr:
                ipr.link("set", index=LOOPBACK_INDEX, state="up")
        except OrcError:
            raise
        except Exception as exc:
            raise _map_netlink(exc, f"bringing lo up in {netns}") from exc

    def ensure_ipv4_forwarding(self) -> bool:
        path = "/proc/sys/net/ipv4/ip_forward"
        try:
            with open(path) as f:
                if f.read().strip() == "1":
                    return False
            with open(path, "w") as f:
                f.write("1")
        except OSError as exc:
            raise PermanentError(f"cannot enable IPv4 forwarding ({path}): {exc}") from exc
        return True
