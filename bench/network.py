"""Network driver costs and throughput on this host (run as root).

    .venv/bin/python bench/network.py [--setup-runs 40] [--seconds 3] [--reps 3] [--no-docker]

* Setup on a container's critical path: ``NetworkDriver.connect`` for one network (lease under
  the state-file lock, veth created directly in the container's netns, MAC/MTU, addresses, lo
  up, default route, state write, DNS registration), against the same links made the other way
  (veth created in the host namespace, then its end moved into the container's) with raw
  pyroute2, and the bare ``ip`` commands a shell script would run.
* Throughput with iperf3 (servers run inside the bench's namespaces): container→container over
  an orc bridge vs over a plain veth pair (no bridge); host→container through orc's userland
  proxy vs straight to the container address, and through Docker's docker-proxy when Docker is
  installed (busybox:local with the host's iperf3 and its libraries bind-mounted).

Everything it makes (namespaces, links, nft tables, containers) is removed at the end. Prints a
markdown table: medians with min/max and ratios against the peer named in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio

from orchestrator.runtime.network import ipam
from orchestrator.runtime.network.driver import NetworkDriver
from orchestrator.runtime.network.netlink import IFA_F_NODAD, netlink_socket_in
from orchestrator.runtime.network.ports import parse_port
from orchestrator.runtime.network.proxy import PortProxy
from orchestrator.runtime.network.spec import EndpointSpec, NetworkSpec


class Netns:
    def __init__(self) -> None:
        own = os.readlink("/proc/self/ns/net")
        self.proc = subprocess.Popen(["unshare", "--net", "--", "sleep", "3600"])
        while os.readlink(f"/proc/{self.proc.pid}/ns/net") == own:
            time.sleep(0.001)
        self.children: list[subprocess.Popen[bytes]] = []

    @property
    def path(self) -> str:
        return f"/proc/{self.proc.pid}/ns/net"

    def spawn(self, *argv: str) -> None:
        cmd = ["nsenter", f"--net={self.path}", "--", *argv]
        self.children.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def run(self, *argv: str) -> str:
        cmd = ["nsenter", f"--net={self.path}", "--", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def close(self) -> None:
        for p in [*self.children, self.proc]:
            if p.poll() is None:
                p.kill()
            p.wait()


@contextlib.contextmanager
def namespaces(count: int) -> Iterator[list[Netns]]:
    made: list[Netns] = []
    try:
        for _ in range(count):
            made.append(Netns())
        yield made
    finally:
        for ns in made:
            ns.close()


def stats(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


# --- setup ----------------------------------------------------------------------------------


def bench_setup(runs: int, root: Path, tag: str) -> dict[str, list[float]]:
    from pyroute2 import IPRoute

    results: dict[str, list[float]] = {"orc": [], "orc-tmpfs": [], "move": [], "ip": []}
    driver = NetworkDriver(root=root, pools_v4=(ipam.PoolRange("10.250.0.0/16", 20),))
    info = driver.create_network(NetworkSpec(project=tag, name=f"{tag}_bench"))
    # /run is a tmpfs on most hosts (not on this VM): the same driver with its state file there
    shm = Path(tempfile.mkdtemp(prefix="orc-bench-", dir="/dev/shm"))
    shm_driver = NetworkDriver(root=shm, pools_v4=(ipam.PoolRange("10.250.0.0/16", 20),))
    with shm_driver.store.transaction() as state, driver.store.transaction() as source:
        state.ipam.networks = source.ipam.networks  # same network, leases from another range
        state.networks = dict(source.networks)
    host = IPRoute()
    bridge_index = host.link_lookup(ifname=info.bridge)[0]
    try:
        with namespaces(runs * 4) as spaces:
            for i in range(runs):
                # orc: the driver call the reconciler makes
                ns = spaces[4 * i]
                start = time.perf_counter()
                driver.connect(f"{tag}-c{i}", ns.path, [EndpointSpec(network=info.name, dns_names=("svc",))])
                results["orc"].append((time.perf_counter() - start) * 1000)
                ns = spaces[4 * i + 3]
                start = time.perf_counter()
                shm_driver.connect(
                    f"{tag}-s{i}", ns.path, [EndpointSpec(network=info.name, ipv4=f"10.250.10.{i + 2}")]
                )
                results["orc-tmpfs"].append((time.perf_counter() - start) * 1000)

                # create in the host namespace, then move the peer: raw pyroute2, no state
                ns = spaces[4 * i + 1]
                name, peer = f"{tag}m{i}"[:15], f"{tag}n{i}"[:15]
                start = time.perf_counter()
                host.link("add", ifname=name, kind="veth", peer=peer, master=bridge_index, state="up")
                fd = os.open(ns.path, os.O_RDONLY)
                host.link("set", index=host.link_lookup(ifname=peer)[0], net_ns_fd=fd)
                os.close(fd)
                with IPRoute(fileno=netlink_socket_in(ns.path).detach()) as inner:
                    idx = inner.link_lookup(ifname=peer)[0]
                    inner.link("set", index=idx, ifname="eth0")
                    inner.addr("add", index=idx, address=f"10.250.8.{i + 2}", prefixlen=20, flags=IFA_F_NODAD)
                    inner.link("set", index=idx, state="up")
                    inner.link("set", index=1, state="up")
                    inner.route("add", dst="0.0.0.0/0", gateway=info.gateways[0])
                results["move"].append((time.perf_counter() - start) * 1000)
                host.link("del", ifname=name)

                # the same with ip(8), as a shell script would
                ns = spaces[4 * i + 2]
                name = f"{tag}i{i}"[:15]
                pid = str(ns.proc.pid)
                start = time.perf_counter()
                for argv in (
                    [
                        "ip",
                        "link",
                        "add",
                        name,
                        "master",
                        info.bridge,
                        "up",
                        "type",
                        "veth",
                        "peer",
                        "eth0",
                        "netns",
                        pid,
                    ],
                    [
                        "nsenter",
                        f"--net={ns.path}",
                        "ip",
                        "addr",
                        "add",
                        f"10.250.9.{i + 2}/20",
                        "dev",
                        "eth0",
                    ],
                    ["nsenter", f"--net={ns.path}", "ip", "link", "set", "eth0", "up"],
                    ["nsenter", f"--net={ns.path}", "ip", "link", "set", "lo", "up"],
                    ["nsenter", f"--net={ns.path}", "ip", "route", "add", "default", "via", info.gateways[0]],
                ):
                    subprocess.run(argv, check=True)
                results["ip"].append((time.perf_counter() - start) * 1000)
                subprocess.run(["ip", "link", "del", name], check=True)
    finally:
        host.close()
        for container in list(shm_driver.store.read().attachments):
            shm_driver.disconnect(container)
        shutil.rmtree(shm)
        for container in list(driver.store.read().attachments):
            driver.disconnect(container)
        driver.remove_network(info.name)
    return results


# --- throughput -----------------------------------------------------------------------------


def iperf_client(argv_prefix: list[str], host: str, port: int, seconds: int) -> float:
    """Gbit/s received, from iperf3's JSON."""
    argv = [*argv_prefix, "iperf3", "-c", host, "-p", str(port), "-t", str(seconds), "-J"]
    for _ in range(50):
        done = subprocess.run(argv, capture_output=True, text=True)
        try:
            return float(json.loads(done.stdout)["end"]["sum_received"]["bits_per_second"]) / 1e9
        except (ValueError, KeyError):
            time.sleep(0.1)  # the server may still be starting, or finishing the previous test
    raise RuntimeError(f"iperf3 failed: {done.stdout[-500:]} {done.stderr[-500:]}")


def bench_bridge(seconds: int, reps: int, root: Path, tag: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"bridge": [], "veth": []}
    driver = NetworkDriver(root=root, pools_v4=(ipam.PoolRange("10.251.0.0/16", 24),))
    info = driver.create_network(NetworkSpec(project=tag, name=f"{tag}_tp"))
    pair = f"{tag}p"[:13]
    try:
        with namespaces(4) as (server, client, vserver, vclient):
            [att] = driver.connect(f"{tag}-srv", server.path, [EndpointSpec(network=info.name)])
            driver.connect(f"{tag}-cli", client.path, [EndpointSpec(network=info.name)])
            server.spawn("iperf3", "-s", "-p", "5201")
            # plain veth pair straight between two namespaces: the floor a bridge adds to
            subprocess.run(
                [
                    "ip",
                    "link",
                    "add",
                    pair + "a",
                    "netns",
                    str(vserver.proc.pid),
                    "type",
                    "veth",
                    "peer",
                    pair + "b",
                    "netns",
                    str(vclient.proc.pid),
                ],
                check=True,
            )
            for ns, end, address in (
                (vserver, pair + "a", "10.252.0.1/30"),
                (vclient, pair + "b", "10.252.0.2/30"),
            ):
                ns.run("ip", "addr", "add", address, "dev", end)
                ns.run("ip", "link", "set", end, "up")
                ns.run("ip", "link", "set", "lo", "up")
            vserver.spawn("iperf3", "-s", "-p", "5201")
            client_prefix = ["nsenter", f"--net={client.path}", "--"]
            vclient_prefix = ["nsenter", f"--net={vclient.path}", "--"]
            for _ in range(reps):
                out["bridge"].append(iperf_client(client_prefix, str(att.ipv4), 5201, seconds))
                out["veth"].append(iperf_client(vclient_prefix, "10.252.0.1", 5201, seconds))
    finally:
        for container in list(driver.store.read().attachments):
            driver.disconnect(container)
        driver.remove_network(info.name)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_docker_iperf(name: str, port: int) -> None:
    """busybox:local running the host's iperf3 (binary and libraries bind-mounted), published on
    127.0.0.1:port through Docker's docker-proxy."""
    mounts = []
    for d in ("/usr/bin/iperf3", "/lib/x86_64-linux-gnu", "/lib64"):
        mounts += ["-v", f"{d}:{d}:ro"]
    argv = ["docker", "run", "-d", "--rm", "--name", name, "--tmpfs", "/tmp"]
    argv += ["-p", f"127.0.0.1:{port}:5201", *mounts, "busybox:local", "/usr/bin/iperf3", "-s", "-p", "5201"]
    subprocess.run(argv, check=True, capture_output=True)


def bench_proxy(seconds: int, reps: int, root: Path, tag: str, docker: bool) -> dict[str, list[float]]:
    """Each rep runs the three paths back to back, so load changes hit them alike."""
    out: dict[str, list[float]] = {"orc proxy": [], "direct": [], "docker-proxy": []}
    driver = NetworkDriver(root=root, pools_v4=(ipam.PoolRange("10.253.0.0/16", 24),))
    info = driver.create_network(NetworkSpec(project=tag, name=f"{tag}_px"))
    container = f"{tag}-iperf" if docker else None
    dport = _free_port()
    try:
        if container:
            start_docker_iperf(container, dport)
        with namespaces(1) as (server,):
            [att] = driver.connect(f"{tag}-srv", server.path, [EndpointSpec(network=info.name)])
            server.spawn("iperf3", "-s", "-p", "5201")
            port = _free_port()

            async def run_proxy() -> None:
                async with anyio.create_task_group() as tg:
                    proxy = PortProxy(tg, ipv6=False)
                    proxy.publish(att.container, str(att.ipv4), parse_port(f"127.0.0.1:{port}:5201"))
                    for _ in range(reps):
                        out["orc proxy"].append(
                            await anyio.to_thread.run_sync(iperf_client, [], "127.0.0.1", port, seconds)
                        )
                        out["direct"].append(
                            await anyio.to_thread.run_sync(iperf_client, [], str(att.ipv4), 5201, seconds)
                        )
                        if container:
                            out["docker-proxy"].append(
                                await anyio.to_thread.run_sync(iperf_client, [], "127.0.0.1", dport, seconds)
                            )
                    await proxy.aclose()

            anyio.run(run_proxy)
    finally:
        if container:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        for c in list(driver.store.read().attachments):
            driver.disconnect(c)
        driver.remove_network(info.name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup-runs", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-docker", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/network.py needs root")
    tag = "orcb" + uuid.uuid4().hex[:4]
    docker = (
        not args.no_docker
        and shutil.which("docker") is not None
        and subprocess.run(["docker", "image", "inspect", "busybox:local"], capture_output=True).returncode
        == 0
    )
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="orc-bench-net-") as tmp:
        root = Path(tmp)
        setup = bench_setup(args.setup_runs, root / "setup", tag)
        bridge = bench_bridge(args.seconds, args.reps, root / "bridge", tag)
        proxy = bench_proxy(args.seconds, args.reps, root / "proxy", tag, docker)

    print(
        f"kernel {os.uname().release}, {os.cpu_count()} CPUs, iperf3 -t {args.seconds}, {args.reps} reps, "
        f"1-min load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after\n"
    )
    print("| per-container network setup | runs | median ms | min ms | max ms | vs orc |")
    print("|---|---|---|---|---|---|")
    orc_median = stats(setup["orc"])[0]
    labels = {
        "orc": "orc `connect` (veth made in the netns, state + DNS), state on ext4",
        "orc-tmpfs": "orc `connect`, state file on tmpfs (/dev/shm)",
        "move": "pyroute2: veth in host ns, then move peer (no state)",
        "ip": "ip(8) commands (veth in netns, then addr/up/route)",
    }
    for key, label in labels.items():
        med, lo, hi = stats(setup[key])
        print(f"| {label} | {len(setup[key])} | {med:.2f} | {lo:.2f} | {hi:.2f} | {med / orc_median:.2f}× |")
    print()
    print("| throughput (iperf3, TCP) | reps | median Gbit/s | min | max | ratio |")
    print("|---|---|---|---|---|---|")
    veth = stats(bridge["veth"])[0]
    rows = [
        ("container→container, plain veth pair", bridge["veth"], veth, "1.00× (peer)"),
        ("container→container, orc bridge", bridge["bridge"], veth, None),
    ]
    for label, samples, ref, fixed in rows:
        med, lo, hi = stats(samples)
        print(
            f"| {label} | {len(samples)} | {med:.2f} | {lo:.2f} | {hi:.2f} | {fixed or f'{med / ref:.2f}× of veth'} |"
        )
    direct = stats(proxy["direct"])[0]
    docker_med = stats(proxy["docker-proxy"])[0] if proxy["docker-proxy"] else None
    for label, key in (
        ("host→container, direct to its address", "direct"),
        ("host→container, orc proxy (127.0.0.1)", "orc proxy"),
        ("host→container, docker-proxy (127.0.0.1)", "docker-proxy"),
    ):
        samples = proxy[key]
        if not samples:
            print(f"| {label} | 0 | – | – | – | not run (no Docker or busybox:local) |")
            continue
        med, lo, hi = stats(samples)
        ratio = f"{med / direct:.2f}× of direct"
        if key == "orc proxy" and docker_med:
            ratio += f", {med / docker_med:.2f}× of docker-proxy"
        print(f"| {label} | {len(samples)} | {med:.2f} | {lo:.2f} | {hi:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
