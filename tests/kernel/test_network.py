"""Real-kernel tests of the network driver: bridges, veths, DNS, published ports, teardown.

Each "container" is a network namespace held by a sleeping child (``unshare --net``) in which
busybox applets run through ``nsenter``; commands that must use the resolv.conf orc produced run in
a private mount namespace with that file bind-mounted over /etc/resolv.conf. Traffic only goes to
loopback and to namespaces the test made; DNS forwarding is tested against a fake upstream on
loopback. Every test has its own state root, unique names, an address pool of its own, and
removes what it made (the conftest checks links, netns and mounts; these tests check nftables
tables and proxy sockets themselves).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.runtime.network import ipam
from orchestrator.runtime.network.dnsfiles import HostResolvConf, resolv_conf
from orchestrator.runtime.network.driver import NetworkDriver
from orchestrator.runtime.network.naming import nft_table_name
from orchestrator.runtime.network.ports import parse_port
from orchestrator.runtime.network.services import NetworkServices
from orchestrator.runtime.network.spec import EndpointSpec, NetworkSpec

pytestmark = pytest.mark.kernel

BUSYBOX = "/bin/busybox"


class Netns:
    """A network namespace kept alive by a sleeping child process."""

    def __init__(self) -> None:
        own = os.readlink("/proc/self/ns/net")
        self.proc = subprocess.Popen(["unshare", "--net", "--", "sleep", "600"])
        self.children: list[subprocess.Popen[bytes]] = []
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{self.proc.pid}/ns/net") == own:
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("unshare --net did not create a namespace")
            time.sleep(0.002)

    @property
    def path(self) -> str:
        return f"/proc/{self.proc.pid}/ns/net"

    def argv(self, *cmd: str, resolv: Path | None = None) -> list[str]:
        base = ["nsenter", f"--net={self.path}", "--"]
        if resolv is None:
            return [*base, BUSYBOX, *cmd]
        script = f'mount --bind "{resolv}" /etc/resolv.conf && exec {BUSYBOX} "$@"'
        return [*base, "unshare", "--mount", "--", BUSYBOX, "sh", "-c", script, "sh", *cmd]

    def run(
        self, *cmd: str, resolv: Path | None = None, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*cmd, resolv=resolv), capture_output=True, text=True, timeout=timeout)

    def can_fetch(self, url: str, resolv: Path | None = None) -> bool:
        """Whether an HTTP GET of ``url`` succeeds within 1.5 s (dropped packets time out)."""
        try:
            return self.run("wget", "-q", "-O", "-", url, resolv=resolv, timeout=1.5).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def spawn(self, *cmd: str) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(self.argv(*cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.children.append(child)
        return child

    def wait_listening(self, port: int, proto: str = "tcp", timeout: float = 10) -> None:
        """Until something in the namespace listens on ``port`` (its own /proc/net tables)."""
        needle = f":{port:04X} "
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for table in (proto, proto + "6"):
                with open(f"/proc/{self.proc.pid}/net/{table}") as f:
                    if any(needle in line and line.split()[3] in ("0A", "07") for line in f):
                        return
            time.sleep(0.01)
        raise AssertionError(f"nothing listens on {port}/{proto} in the namespace")

    def httpd(self, root: Path) -> None:
        self.spawn("httpd", "-f", "-p", "80", "-h", str(root))
        self.wait_listening(80)

    def spawn_udp_echo(self, port: int) -> None:
        """A UDP echo server in the namespace (busybox nc -u serves one peer only)."""
        script = (
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.bind(('0.0.0.0', {port}))\n"
            "while True:\n"
            "    data, peer = s.recvfrom(65535)\n"
            "    s.sendto(data, peer)\n"
        )
        argv = ["nsenter", f"--net={self.path}", "--", sys.executable, "-c", script]
        self.children.append(subprocess.Popen(argv))
        self.wait_listening(port, "udp")

    def close(self) -> None:
        for p in [*self.children, self.proc]:
            if p.poll() is None:
                p.kill()
            p.wait()


@pytest.fixture
def make_netns() -> Iterator[Callable[[], Netns]]:
    made: list[Netns] = []

    def make() -> Netns:
        ns = Netns()
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.close()


def _orc_tables() -> set[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.split()[-1].startswith(("orc_", "orcp_"))}


def _iptables_orc_rules() -> list[str]:
    if shutil.which("iptables") is None:
        return []
    out = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "orc:orc" in line]


@pytest.fixture
def driver(tmp_path: Path, unique_name: str) -> Iterator[NetworkDriver]:
    """A driver with a private state root and address pool; removes leftovers after the test."""
    # a /16 of 10.x picked from the test name keeps concurrent runs of different tests apart
    second = 100 + int(unique_name[-4:], 16) % 100
    pool = (ipam.PoolRange(f"10.{second}.0.0/16", 24),)
    pool6 = (ipam.PoolRange(f"fd6f:7263:{second:x}::/48", 64),)
    drv = NetworkDriver(root=tmp_path / "state", pools_v4=pool, pools_v6=pool6)
    tables_before = _orc_tables()
    shim_before = _iptables_orc_rules()
    try:
        yield drv
    finally:
        for container in list(drv.store.read().attachments):
            drv.disconnect(container)
        for info in drv.networks():
            drv.remove_network(info.name)
        leaked_tables = _orc_tables() - tables_before
        leaked_rules = [r for r in _iptables_orc_rules() if r not in shim_before]
        assert not leaked_tables, f"nftables tables left behind: {leaked_tables}"
        assert not leaked_rules, f"iptables rules left behind: {leaked_rules}"


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ep(network: str, *names: str, aliases: tuple[str, ...] = ()) -> EndpointSpec:
    return EndpointSpec(network=network, dns_names=names, aliases=aliases)


async def _thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: fn(*args))


def test_bridge_veth_addresses_and_routes(
    driver: NetworkDriver, make_netns: Callable[[], Netns], unique_name: str
) -> None:
    info = driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_front", mtu=1400))
    ns = make_netns()
    [att] = driver.connect(f"{unique_name}-web-1", ns.path, [_ep(info.name, "web")])
    assert att.ifname == "eth0" and att.default_route
    links = ns.run("ip", "-o", "link").stdout
    assert "eth0" in links and "mtu 1400" in links and att.mac in links
    assert "LOOPBACK,UP" in links
    addrs = ns.run("ip", "-o", "addr").stdout
    assert f"{att.ipv4}/{att.ipv4_prefix}" in addrs
    assert f"default via {info.gateways[0]}" in ns.run("ip", "route").stdout
    host = subprocess.run(
        ["ip", "-o", "link", "show", att.host_ifname], capture_output=True, text=True
    ).stdout
    assert f"master {info.bridge}" in host
    assert ns.run("ping", "-c", "1", "-W", "2", info.gateways[0]).returncode == 0
    # masquerade rule for the subnet in orc's own table
    table = subprocess.run(
        ["nft", "list", "table", "inet", f"orc_{info.bridge}"], capture_output=True, text=True
    )
    assert f"ip saddr {info.subnets[0]}" in table.stdout and "masquerade" in table.stdout
    # applied again over the existing table (a rebuild), the rules are replaced, not doubled
    driver.firewall.apply_network(f"orc_{info.bridge}", info.bridge, list(info.subnets), False, icc=False)
    again = subprocess.run(
        ["nft", "list", "table", "inet", f"orc_{info.bridge}"], capture_output=True, text=True
    ).stdout
    assert again.count("masquerade") == 1 and again.count("ct status & dnat != dnat drop") == 1
    assert f'iifname "{info.bridge}" oifname "{info.bridge}" drop' in again  # icc=False's rule is new
    driver.firewall.apply_network(f"orc_{info.bridge}", info.bridge, list(info.subnets), False, icc=True)
    restored = subprocess.run(
        ["nft", "list", "table", "inet", f"orc_{info.bridge}"], capture_output=True, text=True
    ).stdout
    assert f'iifname "{info.bridge}" oifname "{info.bridge}" drop' not in restored
    assert restored.count("masquerade") == 1
    # the same network asked for again is the same network (idempotent create)
    assert driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_front")) == info
    # the namespace may also be given as an open fd
    other = make_netns()
    fd = os.open(other.path, os.O_RDONLY)
    try:
        [by_fd] = driver.connect(f"{unique_name}-web-2", fd, [_ep(info.name, "web")])
    finally:
        os.close(fd)
    assert f"{by_fd.ipv4}/" in other.run("ip", "-o", "addr").stdout
    assert other.run("ping", "-c", "1", "-W", "2", str(att.ipv4)).returncode == 0


def test_internal_network_has_no_route_out(
    driver: NetworkDriver, make_netns: Callable[[], Netns], unique_name: str
) -> None:
    info = driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_back", internal=True))
    ns = make_netns()
    driver.connect(f"{unique_name}-db-1", ns.path, [_ep(info.name, "db")])
    assert "default" not in ns.run("ip", "route").stdout
    table = subprocess.run(
        ["nft", "list", "table", "inet", f"orc_{info.bridge}"], capture_output=True, text=True
    )
    assert "masquerade" not in table.stdout and "drop" in table.stdout


def test_network_mode_none_and_external(
    driver: NetworkDriver, make_netns: Callable[[], Netns], unique_name: str
) -> None:
    ns = make_netns()
    driver.prepare_mode("none", ns.path)
    links = ns.run("ip", "-o", "link").stdout.strip().splitlines()
    assert len(links) == 1 and "lo" in links[0] and "UP" in links[0]
    with pytest.raises(NotFoundError, match="declared as external"):
        driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_ext", external=True))
    made = driver.create_network(NetworkSpec(project="other", name=f"{unique_name}_shared"))
    adopted = driver.create_network(
        NetworkSpec(project=unique_name, name=f"{unique_name}_shared", external=True)
    )
    assert adopted.bridge == made.bridge
    assert not driver.remove_network(made.name, project=unique_name)  # not this project's to delete
    assert os.path.exists(f"/sys/class/net/{made.bridge}")


def test_dns_by_name_alias_and_isolation(
    driver: NetworkDriver, make_netns: Callable[[], Netns], unique_name: str, tmp_path: Path
) -> None:
    """web and api share `front`; `lonely` is on `back` only; `both` is on front and back."""
    front = driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_front"))
    back = driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_back"))
    web, api, lonely, both = (make_netns() for _ in range(4))
    p = unique_name
    [web_att] = driver.connect(
        f"{p}-web-1", web.path, [_ep(front.name, "web", f"{p}-web-1", aliases=("www",))]
    )
    [api_att] = driver.connect(f"{p}-api-1", api.path, [_ep(front.name, "api", f"{p}-api-1")])
    [lonely_att] = driver.connect(f"{p}-lonely-1", lonely.path, [_ep(back.name, "lonely")])
    both_atts = driver.connect(
        f"{p}-both-1", both.path, [_ep(front.name, "both"), _ep(back.name, "both", aliases=("b2",))]
    )
    assert [a.ifname for a in both_atts] == ["eth0", "eth1"]
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from web\n")
    web.httpd(www)
    lonely_www = tmp_path / "lonely"
    lonely_www.mkdir()
    (lonely_www / "index.html").write_text("hello from lonely\n")
    lonely.httpd(lonely_www)

    host = HostResolvConf((), (), ())  # no upstream: names orc does not know fail at once

    def resolv_for(name: str, gateway: str) -> Path:
        path = tmp_path / f"resolv-{name}.conf"
        path.write_text(resolv_conf(host, gateway))
        return path

    api_resolv = resolv_for("api", front.gateways[0])
    lonely_resolv = resolv_for("lonely", back.gateways[0])
    both_resolv = resolv_for("both", front.gateways[0])

    async def main() -> None:
        async with NetworkServices(driver, host) as services:
            await services.start_dns(front)
            await services.start_dns(back)

            def check() -> None:
                for name in ("web", "www", f"{p}-web-1"):
                    got = api.run("nslookup", name, front.gateways[0])
                    assert str(web_att.ipv4) in got.stdout, (name, got.stdout, got.stderr)
                    fetched = api.run("wget", "-q", "-O", "-", f"http://{name}/", resolv=api_resolv)
                    assert fetched.stdout == "hello from web\n", (name, fetched.stderr)
                assert api.run("nslookup", "lonely", front.gateways[0]).returncode != 0
                # lonely asks its own gateway: web is not on its network
                miss = lonely.run("nslookup", "web", back.gateways[0])
                assert str(web_att.ipv4) not in miss.stdout
                assert not lonely.can_fetch("http://web/", resolv=lonely_resolv)
                # and the address itself is unreachable from the other bridge's namespace
                assert not lonely.can_fetch(f"http://{web_att.ipv4}/")
                # both is on both networks and reaches both, by name, through one resolver
                assert (
                    both.run("wget", "-q", "-O", "-", "http://web/", resolv=both_resolv).stdout
                    == "hello from web\n"
                )
                got = both.run("wget", "-q", "-O", "-", "http://lonely/", resolv=both_resolv)
                assert got.stdout == "hello from lonely\n", got.stderr
                assert str(lonely_att.ipv4) in both.run("nslookup", "lonely", front.gateways[0]).stdout
                assert str(api_att.ipv4) in both.run("nslookup", "api", front.gateways[0]).stdout

            await _thread(check)

    anyio.run(main)
    driver.disconnect(f"{p}-web-1")
    assert not os.path.exists(f"/sys/class/net/{web_att.host_ifname}")


def test_scaled_service_and_forwarding(
    driver: NetworkDriver, make_netns: Callable[[], Netns], unique_name: str
) -> None:
    from dnslib import QTYPE, RR, A, DNSRecord

    net = driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_default"))
    replicas = [make_netns() for _ in range(3)]
    asker = make_netns()
    addresses = []
    for i, ns in enumerate(replicas, start=1):
        [att] = driver.connect(
            f"{unique_name}-db-{i}", ns.path, [_ep(net.name, "db", f"{unique_name}-db-{i}")]
        )
        addresses.append(att.ipv4)
    driver.connect(f"{unique_name}-app-1", asker.path, [_ep(net.name, "app")])

    async def main() -> None:
        upstream_port = _free_port(socket.SOCK_DGRAM)
        async with await anyio.create_udp_socket(
            local_host="127.0.0.1", local_port=upstream_port
        ) as fake_upstream:

            async def answer() -> None:
                async for packet, peer in fake_upstream:
                    request = DNSRecord.parse(packet)
                    reply = request.reply()
                    reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("203.0.113.7"), ttl=60))
                    await fake_upstream.sendto(reply.pack(), peer[0], peer[1])

            async with anyio.create_task_group() as tg:
                tg.start_soon(answer)
                host = HostResolvConf(("127.0.0.1",), (), ())
                async with NetworkServices(driver, host, upstream_port=upstream_port) as services:
                    await services.start_dns(net)
                    out = (await _thread(asker.run, "nslookup", "db", net.gateways[0])).stdout
                    for address in addresses:
                        assert str(address) in out, out
                    forwarded = (await _thread(asker.run, "nslookup", "example.org", net.gateways[0])).stdout
                    assert "203.0.113.7" in forwarded, forwarded
                tg.cancel_scope.cancel()

    anyio.run(main)


def test_published_tcp_udp_and_conflict(
    driver: NetworkDriver, make_netns: Callable[[], Netns], unique_name: str, tmp_path: Path
) -> None:
    net = driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_default"))
    ns = make_netns()
    [att] = driver.connect(f"{unique_name}-web-1", ns.path, [_ep(net.name, "web")])
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("published\n")
    ns.httpd(www)
    ns.spawn_udp_echo(7)
    tcp_port = _free_port()
    udp_port = _free_port(socket.SOCK_DGRAM)
    specs = [*parse_port(f"127.0.0.1:{tcp_port}:80"), *parse_port(f"127.0.0.1:{udp_port}:7/udp")]

    async def main() -> None:
        host = HostResolvConf(("127.0.0.1",), (), ())
        async with NetworkServices(driver, host) as services:
            bindings = await services.publish(att.container, att.ipv4 or "", specs, dnat=True)
            assert [str(b) for b in bindings] == [f"127.0.0.1:{tcp_port}", f"127.0.0.1:{udp_port}"]
            assert services.port(att.container, 80) == [f"127.0.0.1:{tcp_port}"]
            table = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
            assert driver.store.read().dnat_tables[att.container] in table
            body = await _http_get("127.0.0.1", tcp_port)
            assert body.endswith(b"published\n"), body
            async with await anyio.create_connected_udp_socket("127.0.0.1", udp_port) as udp:
                for _ in range(20):  # nc may not be listening yet on the first datagram
                    await udp.send(b"ping over udp\n")
                    with anyio.move_on_after(0.25):
                        assert await udp.receive() == b"ping over udp\n"
                        break
                else:
                    raise AssertionError("no UDP echo through the proxy")
            # a second container asking for the same host port fails naming the port and holder
            blocker = socket.socket()
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind(("127.0.0.1", 0))
            blocker.listen(1)
            taken = blocker.getsockname()[1]
            try:
                with pytest.raises(ConflictError) as err:
                    await services.publish("other", att.ipv4 or "", parse_port(f"127.0.0.1:{taken}:80"))
                assert f"host port {taken} is already in use by pid {os.getpid()}" in str(err.value)
            finally:
                blocker.close()
            await services.unpublish(att.container)
            assert not _listening(tcp_port)

    anyio.run(main)
    driver.disconnect(att.container)
    assert att.container not in driver.store.read().dnat_tables


async def _http_get(host: str, port: int) -> bytes:
    for _ in range(50):  # httpd in the namespace may still be starting
        try:
            async with await anyio.connect_tcp(host, port) as stream:
                await stream.send(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                chunks = []
                with contextlib.suppress(anyio.EndOfStream):
                    while True:
                        chunks.append(await stream.receive())
                data = b"".join(chunks)
                if data:
                    return data
        except OSError:
            pass
        await anyio.sleep(0.05)
    raise AssertionError("no HTTP answer through the proxy")


def _listening(port: int) -> bool:
    needle = f":{port:04X} "
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            if any(needle in line and line.split()[3] == "0A" for line in f):
                return True
    return False


def test_teardown_removes_everything(
    driver: NetworkDriver, make_netns: Callable[[], Netns], unique_name: str
) -> None:
    before_tables = _orc_tables()
    before_links = set(os.listdir("/sys/class/net"))
    net = driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_default"))
    ns = make_netns()
    [att] = driver.connect(f"{unique_name}-x-1", ns.path, [_ep(net.name, "x")])
    assert f"orc_{net.bridge}" in _orc_tables()
    with pytest.raises(ConflictError, match="in use by"):
        driver.remove_network(net.name)
    driver.disconnect(att.container)
    assert driver.remove_network(net.name)
    assert _orc_tables() == before_tables
    assert set(os.listdir("/sys/class/net")) == before_links
    state = driver.store.read()
    assert not state.networks and not state.attachments and not state.ipam.networks


def test_ipv6_addresses_routes_and_dns(
    driver: NetworkDriver, make_netns: Callable[[], Netns], unique_name: str
) -> None:
    net = driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_v6", enable_ipv6=True))
    assert len(net.subnets) == 2 and ":" in net.gateways[1]
    web, asker = make_netns(), make_netns()
    [web_att] = driver.connect(f"{unique_name}-web-1", web.path, [_ep(net.name, "web")])
    [ask_att] = driver.connect(f"{unique_name}-app-1", asker.path, [_ep(net.name, "app")])
    assert web_att.ipv6 and ask_att.ipv6
    assert f"{web_att.ipv6}/64" in web.run("ip", "-o", "-6", "addr").stdout
    assert f"default via {net.gateways[1]}" in web.run("ip", "-6", "route").stdout
    assert asker.run("ping6", "-c", "1", "-W", "2", web_att.ipv6).returncode == 0

    async def main() -> None:
        async with NetworkServices(driver, HostResolvConf((), (), ())) as services:
            await services.start_dns(net)
            # asked over IPv6, from the asker's IPv6 address, for both record types
            out = (await _thread(asker.run, "nslookup", "-type=aaaa", "web", net.gateways[1])).stdout
            assert str(web_att.ipv6) in out, out
            out = (await _thread(asker.run, "nslookup", "web", net.gateways[1])).stdout
            assert str(web_att.ipv4) in out, out

    anyio.run(main)


def test_internal_peers_talk_and_icc_false_isolates(
    driver: NetworkDriver, make_netns: Callable[[], Netns], unique_name: str, tmp_path: Path
) -> None:
    internal = driver.create_network(
        NetworkSpec(project=unique_name, name=f"{unique_name}_int", internal=True)
    )
    no_icc = driver.create_network(
        NetworkSpec(
            project=unique_name,
            name=f"{unique_name}_noicc",
            driver_opts=(("com.docker.network.bridge.enable_icc", "false"),),
        )
    )
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("ok\n")
    a, b, c, d = (make_netns() for _ in range(4))
    [a_att] = driver.connect(f"{unique_name}-a-1", a.path, [_ep(internal.name, "a")])
    driver.connect(f"{unique_name}-b-1", b.path, [_ep(internal.name, "b")])
    [c_att] = driver.connect(f"{unique_name}-c-1", c.path, [_ep(no_icc.name, "c")])
    driver.connect(f"{unique_name}-d-1", d.path, [_ep(no_icc.name, "d")])
    a.httpd(www)
    c.httpd(www)
    deadline = time.monotonic() + 5
    while not b.can_fetch(f"http://{a_att.ipv4}/") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.can_fetch(f"http://{a_att.ipv4}/")  # internal: no way out, but peers reach each other
    assert c.can_fetch(f"http://{c_att.ipv4}/")  # httpd is up...
    assert not d.can_fetch(f"http://{c_att.ipv4}/")  # ...but icc=false drops bridge-internal traffic


def test_dnat_path_from_another_network(
    driver: NetworkDriver, make_netns: Callable[[], Netns], unique_name: str, tmp_path: Path
) -> None:
    """A published port reached on a host address from another network's container goes
    through the nftables DNAT rule (its counter moves) past the isolation rule."""
    front = driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_front"))
    other = driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_other"))
    web, client = make_netns(), make_netns()
    [att] = driver.connect(f"{unique_name}-web-1", web.path, [_ep(front.name, "web")])
    driver.connect(f"{unique_name}-cli-1", client.path, [_ep(other.name, "cli")])
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("via dnat\n")
    web.httpd(www)
    port = _free_port()

    async def main() -> None:
        async with NetworkServices(driver, HostResolvConf((), (), ())) as services:
            await services.publish(att.container, str(att.ipv4), parse_port(f"{port}:80"), dnat=True)
            table = driver.store.read().dnat_tables[att.container]

            def fetch() -> str:
                for _ in range(50):
                    got = client.run(
                        "wget", "-q", "-O", "-", f"http://{other.gateways[0]}:{port}/", timeout=3
                    )
                    if got.returncode == 0:
                        return got.stdout
                    time.sleep(0.05)
                return ""

            assert await _thread(fetch) == "via dnat\n"
            listing = subprocess.run(
                ["nft", "list", "table", "inet", table], capture_output=True, text=True
            ).stdout
            prerouting = listing.split("chain prerouting")[1].split("chain output")[0]
            assert "counter packets 0 " not in prerouting, listing

    anyio.run(main)


def test_a_networks_bridge_and_rules_go_ahead_of_its_leaving_containers(
    driver: NetworkDriver, make_netns: Callable[[], Netns], unique_name: str
) -> None:
    """`down` deletes the bridge (ports still enslaved) and the firewall rules while the removed
    containers' namespaces are still being torn down; only when nobody else is on the network."""
    net = driver.create_network(NetworkSpec(project=unique_name, name=f"{unique_name}_default"))
    one, two = make_netns(), make_netns()
    [att_one] = driver.connect(f"{unique_name}-one-1", one.path, [_ep(net.name, "one")])
    driver.connect(f"{unique_name}-two-1", two.path, [_ep(net.name, "two")])
    table = nft_table_name(net.bridge)
    assert subprocess.run(["nft", "list", "table", "inet", table], capture_output=True).returncode == 0
    assert not driver.unbuild_ahead(net.name, unique_name, {f"{unique_name}-one-1"})
    assert os.path.exists(f"/sys/class/net/{net.bridge}")
    assert driver.unbuild_ahead(net.name, unique_name, {f"{unique_name}-one-1", f"{unique_name}-two-1"})
    assert not os.path.exists(f"/sys/class/net/{net.bridge}")
    assert os.path.exists(f"/sys/class/net/{att_one.host_ifname}")  # its namespace still holds it
    assert subprocess.run(["nft", "list", "table", "inet", table], capture_output=True).returncode != 0
    driver.disconnect(f"{unique_name}-one-1")
    driver.disconnect(f"{unique_name}-two-1")
    assert driver.remove_network(net.name, unique_name)
    assert net.name not in driver.store.read().networks


def test_wait_gone_wakes_on_the_veths_deletion_and_returns_what_stays(
    make_netns: Callable[[], Netns], unique_name: str
) -> None:
    """``wait_gone`` returns once the namespace holding a veth's peer is gone (the kernel's
    notification wakes it, well before the timeout), and the names still there after it."""
    from orchestrator.runtime.network.netlink import PyrouteLinkOps

    ns, stays = make_netns(), make_netns()
    going, kept = f"v{unique_name[-8:]}g", f"v{unique_name[-8:]}k"
    for name, where in ((going, ns), (kept, stays)):
        subprocess.run(
            ["ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", str(where.proc.pid)],
            check=True,
        )
    try:
        links = PyrouteLinkOps()
        began = time.monotonic()
        ns.close()  # its only process ends: the namespace, and the veth with it, go
        assert links.wait_gone([going], timeout=10.0) == []
        assert time.monotonic() - began < 5.0
        began = time.monotonic()
        assert links.wait_gone([kept], timeout=0.3) == [kept]
        assert 0.3 <= time.monotonic() - began < 3.0
    finally:
        for name in (going, kept):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
