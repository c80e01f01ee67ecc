"""Links, addresses and routes through netlink, behind the ``LinkOps`` Protocol.

``PyrouteLinkOps`` is the real thing: pyroute2's message classes (``ifinfmsg``, ``ifaddrmsg``,
``rtmsg``) encode the requests and decode the replies, and :class:`RtnlSocket` exchanges them over
a plain ``NETLINK_ROUTE`` socket, synchronously. pyroute2's own ``IPRoute`` is not used on this
path: importing it costs ~60 ms (it loads every tc qdisc module and ssl) and each instance runs
an asyncio event loop of its own (~1-2 ms per socket); a container's wiring opened two. For a
container the socket is opened *inside* its network namespace (``setns`` on this thread, open
the socket, ``setns`` back: a socket stays in the namespace it was created in), so there is no
helper process. The container end of each veth is created directly in the container's namespace
(``peer`` with ``IFLA_NET_NS_FD``), which is several times faster than create-then-move.

pyroute2 is imported lazily (CLI cold start), and only its message modules: its package
``__init__`` imports every family it supports (IPDB, NDB, wireless, ...), ~0.1 s and ~6 MiB of a
supervisor that never uses them (see :func:`_codecs`). Blocking calls: use them from a
worker thread (``anyio.to_thread.run_sync``). ``fake.RecordingLinkOps`` records the same calls for
unit tests. Called by ``driver.NetworkDriver``.
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import importlib.util
import ipaddress
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.errors import NotFoundError, OrcError, PermanentError, TemporaryError
from orchestrator.firstuse import ModuleOnFirstUse, StandingIn, forwarding_class, forwarding_function

CLONE_NEWNET = 0x40000000
IFA_F_NODAD = 0x02
NETLINK_ROUTE = 0
LOOPBACK_INDEX = 1  # lo is always ifindex 1 in a network namespace

NetnsRef = str | int  # a path like /proc/<pid>/ns/net, or an open fd to one


_PYROUTE2_LOCK = threading.Lock()


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


def _register_deferred_pyroute2() -> None:
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is not None and spec.loader is not None:
            sys.modules["pyroute2"] = _deferred_package(spec)


_CODECS: Any = None


def _codecs() -> Any:
    """pyroute2's rtnetlink message classes (``ifinfmsg``, ``ifaddrmsg``, ``rtmsg``), loaded once
    without pyroute2's package ``__init__`` or ``IPRoute`` (~12 ms instead of ~60 ms)."""
    global _CODECS
    with _PYROUTE2_LOCK:
        if _CODECS is None:
            _register_deferred_pyroute2()
            with StandingIn(_multiprocessing_on_first_use()):
                from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
                from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
                from pyroute2.netlink.rtnl.rtmsg import rtmsg

            _CODECS = (ifinfmsg, ifaddrmsg, rtmsg)
    return _CODECS


def _multiprocessing_on_first_use() -> ModuleOnFirstUse:
    """``multiprocessing`` for pyroute2's config, which takes its Pipe, Queue and Process by name
    (for pyroute2's helper processes, which orc never starts): it is imported when one is first
    used. It was ~0.15 MiB of the supervisor, and with it ``pickle``'s Python module."""

    def real() -> Any:
        return stand_in.load()

    stand_in = ModuleOnFirstUse(
        "multiprocessing",
        Pipe=forwarding_function("Pipe", lambda: real().Pipe),
        Queue=forwarding_function("Queue", lambda: real().Queue),
        Process=forwarding_class("Process", lambda: real().Process),
    )
    return stand_in


def preload_codecs() -> None:
    """Load the message classes now (a supervisor does it in the background while it waits for
    its first request, so the first network's setup does not pay ~10 ms of imports)."""
    _codecs()


# rtnetlink message types and flags (linux/rtnetlink.h, linux/netlink.h)
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR = 20
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
_HEADER = struct.Struct("=IHHII")
# struct ifinfomsg after the header: family, padding, type, then the index
_IFINFO_INDEX = struct.Struct("=4xi")

# The messages on every container's path, encoded here: pyroute2's generic encoder cost ~0.5 ms
# of CPU a message (attribute tables walked per field), six per container, on the supervisor's
# busiest path. Byte for byte what pyroute2 sends (tests/unit/runtime/network/test_netlink_encoding.py);
# everything else still goes through pyroute2's classes.
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_ATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_OIF, RTA_GATEWAY = 4, 5


def _attr(kind: int, payload: bytes) -> bytes:
    length = _ATTR.size + len(payload)
    return _ATTR.pack(length, kind) + payload + bytes(-length % 4)


def _text_attr(kind: int, text: str) -> bytes:
    return _attr(kind, text.encode() + b"\0")


def _u32_attr(kind: int, value: int) -> bytes:
    return _attr(kind, _U32.pack(value))


def link_up_message(index: int) -> bytes:
    """RTM_NEWLINK's body bringing link ``index`` up."""
    return _IFINFOMSG.pack(0, 0, index, IFF_UP, IFF_UP)


def link_by_name_message(name: str) -> bytes:
    """RTM_GETLINK's body asking for the link named ``name``."""
    return _IFINFOMSG.pack(0, 0, 0, 0, 0) + _text_attr(IFLA_IFNAME, name)


def address_message(index: int, address: IfaceAddress) -> bytes:
    """RTM_NEWADDR's body: ``address`` on link ``index``, without duplicate address detection."""
    family = _family(address.address)
    packed = socket.inet_pton(family, address.address)
    local = _attr(IFA_LOCAL, packed) if family == socket.AF_INET else b""
    head = _IFADDRMSG.pack(family, address.prefixlen, IFA_F_NODAD, 0, index)
    return head + local + _attr(IFA_ADDRESS, packed)


def veth_message(host_name: str, mtu: int, master: int, peer_name: str, netns_fd: int, mac: str) -> bytes:
    """RTM_NEWLINK's body creating a veth: ``host_name`` up in ``master`` here, its peer
    ``peer_name`` with ``mac`` directly in the namespace ``netns_fd``."""
    peer = (
        _IFINFOMSG.pack(0, 0, 0, 0, 0)
        + _text_attr(IFLA_IFNAME, peer_name)
        + _u32_attr(IFLA_NET_NS_FD, netns_fd)
        + _attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
        + _u32_attr(IFLA_MTU, mtu)
    )
    info = _text_attr(IFLA_INFO_KIND, "veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer))
    return (
        _IFINFOMSG.pack(0, 0, 0, IFF_UP, IFF_UP)
        + _text_attr(IFLA_IFNAME, host_name)
        + _u32_attr(IFLA_MTU, mtu)
        + _u32_attr(IFLA_MASTER, master)
        + _attr(IFLA_LINKINFO, info)
    )


def default_route_message(family: int, gateway: str, index: int) -> bytes:
    """RTM_NEWROUTE's body: the main table's default route through ``gateway`` on ``index``."""
    head = _RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    return head + _attr(RTA_GATEWAY, socket.inet_pton(family, gateway)) + _u32_attr(RTA_OIF, index)


class RtnlSocket:
    """One ``NETLINK_ROUTE`` socket: a request encoded by a pyroute2 message class, then its
    replies read until the acknowledgement (or the end of a dump). Errors come back as
    ``OSError`` with the kernel's errno."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket(
            socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        self.sock.bind((0, 0))
        self._sequence = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RtnlSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, message: Any, message_type: int, flags: int = 0, reply_class: Any = None, raw: bool = False
    ) -> list[Any]:
        """Send ``message`` (a pyroute2 message with its fields and ``attrs`` set, or the bytes
        of a message's body, after the netlink header) as ``message_type``; the decoded replies
        of ``reply_class`` (a dump's entries, or the one answer of a get) once the kernel
        acknowledged or ended the dump. ``raw``: the replies' bytes (header included), not
        decoded."""
        self._sequence += 1
        sequence = self._sequence
        flags |= NLM_F_REQUEST | NLM_F_ACK
        if isinstance(message, bytes):
            self.sock.send(
                _HEADER.pack(_HEADER.size + len(message), message_type, flags, sequence, 0) + message
            )
        else:
            header = message["header"]
            header["type"] = message_type
            header["flags"] = flags
            header["sequence_number"] = sequence
            header["pid"] = 0
            message.encode()
            self.sock.send(message.data)
        replies: list[Any] = []
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _, number, _ = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    raise OSError(errno.EPROTO, "malformed netlink reply")
                if number == sequence:
                    if kind == NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", data, offset + _HEADER.size)
                        if code:
                            raise OSError(-code, os.strerror(-code))
                        return replies
                    if kind == NLMSG_DONE:
                        return replies
                    if raw:
                        replies.append(data[offset : offset + length])
                    elif reply_class is not None:
                        reply = reply_class(data[offset : offset + length])
                        reply.decode()
                        replies.append(reply)
                offset += (length + 3) & ~3


def _message(cls: Any, fields: dict[str, int], attrs: list[Any]) -> Any:
    message = cls()
    for key, value in fields.items():
        message[key] = value
    message["attrs"] = attrs
    return message


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


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

    def wait_gone(self, names: Sequence[str], timeout: float) -> list[str]:
        """Wait up to ``timeout`` seconds for host links to disappear (a veth goes when the
        namespace holding its other end is torn down); the names still there after it."""
        ...

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
    def _host(self) -> Iterator[RtnlSocket]:
        # one socket per call (~20 us): cheap enough that nothing is cached per thread
        _codecs()
        with RtnlSocket() as rtnl:
            yield rtnl

    @contextmanager
    def _in(self, netns: NetnsRef) -> Iterator[RtnlSocket]:
        _codecs()
        with RtnlSocket(netlink_socket_in(netns)) as rtnl:
            yield rtnl

    @staticmethod
    def _set_up(rtnl: RtnlSocket, index: int) -> None:
        rtnl.request(link_up_message(index), RTM_NEWLINK)

    @staticmethod
    def _add_address(rtnl: RtnlSocket, index: int, address: IfaceAddress) -> None:
        rtnl.request(address_message(index, address), RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)

    @staticmethod
    def _lookup(rtnl: RtnlSocket, name: str) -> int | None:
        try:
            # Only the index is wanted: read it from the reply's ifinfomsg header. Decoding the
            # whole link (statistics, every attribute) cost ~1 ms of CPU per container.
            found = rtnl.request(link_by_name_message(name), RTM_GETLINK, raw=True)
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return _IFINFO_INDEX.unpack_from(found[0], _HEADER.size)[0] if found else None

    def host_routes(self) -> list[str]:
        _, _, rtmsg = _codecs()
        prefixes: list[str] = []
        with self._host() as rtnl:
            routes = [
                (route["dst_len"], route.get_attr("RTA_DST"))
                for family in (socket.AF_INET, socket.AF_INET6)
                for route in rtnl.request(
                    _message(rtmsg, {"family": family}, []), RTM_GETROUTE, NLM_F_DUMP, rtmsg
                )
                if (route.get_attr("RTA_TABLE") or route["table"]) == RT_TABLE_MAIN
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
        with self._host() as rtnl:
            return self._lookup(rtnl, name) is not None

    def link_names(self) -> set[str]:
        ifinfmsg, _, _ = _codecs()
        with self._host() as rtnl:
            links = rtnl.request(_message(ifinfmsg, {}, []), RTM_GETLINK, NLM_F_DUMP, ifinfmsg)
        return {link.get_attr("IFLA_IFNAME") for link in links}

    def _index(self, rtnl: RtnlSocket, name: str) -> int:
        found = self._lookup(rtnl, name)
        if found is None:
            raise NotFoundError(f"network link {name} does not exist")
        return found

    def add_bridge(self, name: str, mtu: int, addresses: Sequence[IfaceAddress]) -> None:
        ifinfmsg, _, _ = _codecs()
        linkinfo = {
            "attrs": [
                ("IFLA_INFO_KIND", "bridge"),
                ("IFLA_INFO_DATA", {"attrs": [("IFLA_BR_FORWARD_DELAY", 0), ("IFLA_BR_STP_STATE", 0)]}),
            ]
        }
        try:
            with self._host() as rtnl:
                rtnl.request(
                    _message(
                        ifinfmsg, {}, [("IFLA_IFNAME", name), ("IFLA_MTU", mtu), ("IFLA_LINKINFO", linkinfo)]
                    ),
                    RTM_NEWLINK,
                    NLM_F_CREATE | NLM_F_EXCL,
                )
                index = self._index(rtnl, name)
                for address in addresses:
                    self._add_address(rtnl, index, address)
                self._set_up(rtnl, index)
        except OrcError:
            raise
        except Exception as exc:
            raise _map_netlink(exc, f"creating bridge {name}") from exc

    def delete_link(self, name: str) -> bool:
        ifinfmsg, _, _ = _codecs()
        self._bridge_index.pop(name, None)
        with self._host() as rtnl:
            found = self._lookup(rtnl, name)
            if found is None:
                return False
            try:
                rtnl.request(_message(ifinfmsg, {"index": found}, []), RTM_DELLINK)
            except Exception as exc:
                if getattr(exc, "errno", None) == errno.ENODEV:
                    return False
                raise _map_netlink(exc, f"deleting link {name}") from exc
        return True

    def add_veth(
        self, host_name: str, bridge: str, netns: NetnsRef, peer_name: str, mac: str, mtu: int
    ) -> None:
        cached = bridge in self._bridge_index
        try:
            with self._host() as rtnl, _netns_fd(netns) as fd:
                master = self._bridge_index.get(bridge) or self._index(rtnl, bridge)
                rtnl.request(
                    veth_message(host_name, mtu, master, peer_name, fd, mac),
                    RTM_NEWLINK,
                    NLM_F_CREATE | NLM_F_EXCL,
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
            with self._in(netns) as rtnl:
                self._set_up(rtnl, LOOPBACK_INDEX)
                index = self._index(rtnl, iface.ifname)
                for address in iface.addresses:
                    self._add_address(rtnl, index, address)
                self._set_up(rtnl, index)
                for gateway, family in ((iface.gateway4, socket.AF_INET), (iface.gateway6, socket.AF_INET6)):
                    if iface.default_route and gateway:
                        rtnl.request(
                            default_route_message(family, gateway, index),
                            RTM_NEWROUTE,
                            NLM_F_CREATE | NLM_F_EXCL,
                        )
        except OrcError:
            raise
        except Exception as exc:
            raise _map_netlink(exc, f"configuring {iface.ifname} in {netns}") from exc

    def loopback_up(self, netns: NetnsRef) -> None:
        try:
            with self._in(netns) as rtnl:
                self._set_up(rtnl, LOOPBACK_INDEX)
        except OrcError:
            raise
        except Exception as exc:
            raise _map_netlink(exc, f"bringing lo up in {netns}") from exc

    def wait_gone(self, names: Sequence[str], timeout: float) -> list[str]:
        # /sys/class/net shows this process's (the host's) namespace: a stat per name per poll,
        # far cheaper than a netlink lookup
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            left = [n for n in names if os.path.exists(f"/sys/class/net/{n}")]
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

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
