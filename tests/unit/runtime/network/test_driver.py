"""The driver's setup sequence against recording fakes: no root, no kernel."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from orchestrator.errors import ConflictError, NotFoundError, PermanentError
from orchestrator.runtime.network.driver import NetworkDriver
from orchestrator.runtime.network.fake import RecordingLinkOps, RecordingRunner
from orchestrator.runtime.network.firewall import CommandResult, Firewall
from orchestrator.runtime.network.leases import FileLeaseStore, MemoryLeaseStore
from orchestrator.runtime.network.naming import bridge_name, host_veth_name
from orchestrator.runtime.network.netlink import ContainerIface, IfaceAddress
from orchestrator.runtime.network.spec import EndpointSpec, IpamPool, NetworkSpec, PortBinding

NS = "/proc/4242/ns/net"


def make(
    forward_policy: str | None = None, docker_user: bool = False, fail_on: str | None = None
) -> tuple[NetworkDriver, RecordingLinkOps, RecordingRunner]:
    links = RecordingLinkOps(routes=["172.17.0.0/16", "192.0.2.0/24"], fail_on=fail_on)
    runner = RecordingRunner(forward_policy=forward_policy, docker_user_chain=docker_user)
    return NetworkDriver(links=links, firewall=Firewall(runner), store=MemoryLeaseStore()), links, runner


def test_create_network_sequence() -> None:
    driver, links, runner = make()
    info = driver.create_network(NetworkSpec(project="p", name="p_default"))
    assert info.bridge == bridge_name("p_default") and len(info.bridge) <= 15
    assert info.subnets == ("172.18.0.0/16",) and info.gateways == ("172.18.0.1",)
    assert links.calls == [
        ("host_routes",),
        ("add_bridge", info.bridge, 1500, (IfaceAddress("172.18.0.1", 16),)),
    ]
    script = runner.tables[f"orc_{info.bridge}"]
    assert f'ip saddr 172.18.0.0/16 oifname != "{info.bridge}" masquerade' in script
    assert "ct status & dnat != dnat drop" in script  # other networks cannot open connections in
    assert runner.iptables_rules == []  # FORWARD policy accepts: no shim
    assert links.forwarding  # a non-internal network turns on net.ipv4.ip_forward
    # idempotent: the same network again changes nothing
    assert driver.create_network(NetworkSpec(project="p", name="p_default")) == info
    assert len(links.calls) == 2


def test_driver_opts_and_mtu() -> None:
    driver, _links, runner = make()
    info = driver.create_network(
        NetworkSpec(
            project="p",
            name="p_x",
            driver_opts=(
                ("com.docker.network.bridge.name", "br-custom"),
                ("com.docker.network.driver.mtu", "1400"),
                ("com.docker.network.bridge.enable_icc", "false"),
                ("com.docker.network.bridge.enable_ip_masquerade", "false"),
            ),
        )
    )
    assert (info.bridge, info.mtu, info.icc) == ("br-custom", 1400, False)
    script = runner.tables["orc_br_custom"]
    assert "masquerade" not in script
    assert 'iifname "br-custom" oifname "br-custom" drop' in script
    with pytest.raises(PermanentError, match="invalid bridge name"):
        driver.create_network(NetworkSpec(project="p", name="p_y", bridge="much-too-long-bridge"))
    with pytest.raises(PermanentError, match="expected true or false"):
        driver.create_network(
            NetworkSpec(
                project="p", name="p_z", driver_opts=(("com.docker.network.bridge.enable_icc", "maybe"),)
            )
        )
    with pytest.raises(PermanentError, match="is not an MTU between 68 and 65535"):
        driver.create_network(
            NetworkSpec(project="p", name="p_m", driver_opts=(("com.docker.network.driver.mtu", "big"),))
        )
    with pytest.raises(ConflictError, match="already used by network p_x"):
        driver.create_network(NetworkSpec(project="p", name="p_w", bridge="br-custom"))


def test_foreign_link_with_the_bridge_name_is_not_taken_over() -> None:
    driver, links, _ = make()
    links.add_bridge("br-theirs", 1500, [])
    with pytest.raises(ConflictError, match="exists and is not orc's"):
        driver.create_network(NetworkSpec(project="p", name="p_x", bridge="br-theirs"))


def test_internal_network() -> None:
    driver, links, runner = make()
    info = driver.create_network(NetworkSpec(project="p", name="p_back", internal=True))
    assert not links.forwarding
    script = runner.tables[f"orc_{info.bridge}"]
    assert "masquerade" not in script
    assert f'iifname "{info.bridge}" oifname != "{info.bridge}" drop' in script
    [att] = driver.connect("p-db-1", NS, [EndpointSpec(network="p_back")])
    assert not att.default_route
    configure = next(c for c in links.calls if c[0] == "configure_container")
    assert configure[2].default_route is False


def test_connect_sequence_two_networks() -> None:
    driver, links, _ = make()
    front = driver.create_network(NetworkSpec(project="p", name="p_front"))
    back = driver.create_network(NetworkSpec(project="p", name="p_back", pools=(IpamPool("10.5.0.0/24"),)))
    links.calls.clear()
    atts = driver.connect(
        "p-web-1",
        NS,
        [
            EndpointSpec(network="p_back", ipv4="10.5.0.77", aliases=("db-side",), dns_names=("web",)),
            EndpointSpec(
                network="p_front", dns_names=("web", "p-web-1"), priority=10, mac="02:00:00:00:00:01"
            ),
        ],
        dns_upstreams=("9.9.9.9",),
        exposed=("8080/tcp",),
    )
    assert [(a.network, a.ifname, a.default_route) for a in atts] == [
        ("p_front", "eth0", True),
        ("p_back", "eth1", False),
    ]
    assert atts[0].mac == "02:00:00:00:00:01" and atts[1].mac == "02:42:0a:05:00:4d"
    assert links.calls == [
        (
            "add_veth",
            host_veth_name("p-web-1", "p_front"),
            front.bridge,
            NS,
            "eth0",
            "02:00:00:00:00:01",
            1500,
        ),
        (
            "configure_container",
            NS,
            ContainerIface("eth0", (IfaceAddress("172.18.0.2", 16),), "172.18.0.1", None, True),
        ),
        ("add_veth", host_veth_name("p-web-1", "p_back"), back.bridge, NS, "eth1", "02:42:0a:05:00:4d", 1500),
        (
            "configure_container",
            NS,
            ContainerIface("eth1", (IfaceAddress("10.5.0.77", 24),), "10.5.0.1", None, False),
        ),
    ]
    assert driver.dns.lookup("db-side", "172.18.0.2") is not None  # same container: sees both networks
    assert driver.dns.upstreams_for("10.5.0.77") == ("9.9.9.9",)
    assert driver.attachments("p-web-1")[1].exposed == ("8080/tcp",)
    with pytest.raises(ConflictError, match="already connected to p_front"):
        driver.connect("p-web-1", NS, [EndpointSpec(network="p_front")])


def test_failed_configure_rolls_back_veth_and_lease() -> None:
    driver, links, _ = make(fail_on="configure_container")
    info = driver.create_network(NetworkSpec(project="p", name="p_default"))
    with pytest.raises(PermanentError, match="injected failure"):
        driver.connect("p-web-1", NS, [EndpointSpec(network="p_default", dns_names=("web",))])
    assert set(links.links) == {info.bridge}
    state = driver.store.read()
    assert state.attachments == {} and state.ipam.networks["p_default"].addresses == {}
    assert driver.dns.entries() == ()


def test_connect_to_unknown_network() -> None:
    driver, _, _ = make()
    with pytest.raises(NotFoundError, match="network p_nope not found"):
        driver.connect("c", NS, [EndpointSpec(network="p_nope")])


def test_disconnect_and_remove_remove_only_what_was_made() -> None:
    driver, links, runner = make(forward_policy="drop", docker_user=True)
    info = driver.create_network(NetworkSpec(project="p", name="p_default"))
    assert [r[0] for r in runner.iptables_rules] == ["DOCKER-USER"] * 3
    assert all(f"orc:{info.bridge}" in r for r in runner.iptables_rules)
    links.add_bridge("someone-elses", 1500, [])
    [att] = driver.connect("p-web-1", NS, [EndpointSpec(network="p_default", dns_names=("web",))])
    table = driver.publish_dnat(
        "p-web-1", [PortBinding("p-web-1", 80, "tcp", "0.0.0.0", 8080, str(att.ipv4))]
    )
    assert table is not None and table in runner.tables
    assert "fib daddr type local tcp dport 8080 counter dnat ip to 172.18.0.2:80" in runner.tables[table]
    with pytest.raises(ConflictError, match="in use by p-web-1"):
        driver.remove_network("p_default")
    driver.disconnect("p-web-1")
    assert table not in runner.tables
    assert driver.dns.lookup("web", "172.18.0.9", "p_default") is None
    assert driver.remove_network("p_default")
    assert set(links.links) == {"someone-elses"}
    assert runner.tables == {} and runner.iptables_rules == []
    assert not driver.remove_network("p_default")
    state = driver.store.read()
    assert (state.networks, state.attachments, state.ipam.networks) == ({}, {}, {})


def test_an_attachment_whose_veth_is_gone_does_not_keep_its_network() -> None:
    """A supervisor killed after a remove and before its network teardown leaves the
    attachment and its lease recorded; its veth went with the namespace."""
    driver, links, _ = make()
    driver.create_network(NetworkSpec(project="p", name="p_default"))
    driver.create_network(NetworkSpec(project="p", name="p_back"))
    [gone, _] = driver.connect(
        "p-old-1", NS, [EndpointSpec(network="p_default"), EndpointSpec(network="p_back")]
    )
    [live] = driver.connect("p-web-1", NS, [EndpointSpec(network="p_default")])
    links.delete_link(gone.host_ifname)  # the kernel's namespace teardown
    with pytest.raises(ConflictError, match=r"in use by p-web-1$"):
        driver.remove_network("p_default")
    driver.disconnect("p-web-1")
    assert driver.remove_network("p_default")
    state = driver.store.read()
    assert "p_default" not in state.ipam.networks
    assert [a.network for a in state.attachments["p-old-1"]] == ["p_back"]  # the other network's stays
    assert live.host_ifname not in links.links


def test_the_bridge_and_rules_go_ahead_only_when_the_only_users_are_leaving() -> None:
    """`down` deletes a network's bridge and firewall rules while the kernel still tears its
    removed containers' namespaces down, when those are all that is on it; the record and the
    leases go with remove_network, which then deletes nothing twice."""
    driver, links, runner = make(forward_policy="drop")
    info = driver.create_network(NetworkSpec(project="p", name="p_default"))
    driver.connect("p-web-1", NS, [EndpointSpec(network="p_default")])
    driver.connect("p-api-1", NS, [EndpointSpec(network="p_default")])
    assert not driver.unbuild_ahead("p_default", "p", {"p-web-1"})  # p-api-1 stays on it
    assert not driver.unbuild_ahead("p_default", "q", {"p-web-1", "p-api-1"})  # not q's
    assert info.bridge in links.links and runner.tables and runner.iptables_rules
    assert driver.unbuild_ahead("p_default", "p", {"p-web-1", "p-api-1"})
    assert info.bridge not in links.links
    assert runner.tables == {} and runner.iptables_rules == []
    state = driver.store.read()
    assert "p_default" in state.networks and set(state.attachments) == {"p-web-1", "p-api-1"}
    driver.disconnect("p-web-1")
    driver.disconnect("p-api-1")
    commands, link_calls = len(runner.calls), len(links.calls)
    assert driver.remove_network("p_default", "p")
    assert runner.calls[commands:] == [] and ("delete_link", info.bridge) not in links.calls[link_calls:]
    state = driver.store.read()
    assert (state.networks, state.attachments, state.ipam.networks) == ({}, {}, {})
    assert not driver.unbuild_ahead("p_default", "p", set())  # no such network


def meeting_of_three() -> tuple[Callable[[str], None], list[str]]:
    """``meet(what)`` returns once three callers are in it (BrokenBarrierError after 2 s when one
    of them waits for another instead), and the list of what met."""
    all_three = threading.Barrier(3, timeout=2)
    met: list[str] = []

    def meet(what: str) -> None:
        all_three.wait()
        met.append(what)

    return meet, met


def test_the_bridge_the_nft_table_and_the_iptables_shim_are_made_side_by_side() -> None:
    """The rules name the bridge only by name: all three are under way at once, on the path of
    every first container of a project (they must meet here)."""
    driver, links, runner = make(forward_policy="drop")
    meet, met = meeting_of_three()
    run, add_bridge = runner.run, links.add_bridge

    def run_meeting(argv: Sequence[str], input: str | None = None) -> CommandResult:
        if argv[0] == "iptables-restore" or tuple(argv[:2]) == ("nft", "-f"):
            meet(argv[0])
        return run(argv, input)

    def add_bridge_meeting(name: str, mtu: int, addresses: Sequence[IfaceAddress]) -> None:
        meet("bridge")
        add_bridge(name, mtu, addresses)

    runner.run = run_meeting  # type: ignore[method-assign]
    links.add_bridge = add_bridge_meeting  # type: ignore[method-assign]
    info = driver.create_network(NetworkSpec(project="p", name="p_default"))
    assert sorted(met) == ["bridge", "iptables-restore", "nft"]
    assert info.bridge in links.links and runner.tables and runner.iptables_rules


def test_the_bridge_the_nft_table_and_the_iptables_shim_are_deleted_side_by_side() -> None:
    """Each is a process or a kernel wait (~10-45 ms): at the end of a `down`, one after the
    other was ~25 ms more of it. All three must be under way at once to meet here."""
    driver, links, runner = make(forward_policy="drop")
    info = driver.create_network(NetworkSpec(project="p", name="p_default"))
    assert runner.iptables_rules and runner.tables
    meet, met = meeting_of_three()
    run, delete_link = runner.run, links.delete_link

    def run_meeting(argv: Sequence[str], input: str | None = None) -> CommandResult:
        if argv[0] == "iptables-restore" or tuple(argv[:2]) == ("nft", "delete"):
            meet(argv[0])
        return run(argv, input)

    def delete_link_meeting(name: str) -> bool:
        meet("bridge")
        return delete_link(name)

    runner.run = run_meeting  # type: ignore[method-assign]
    links.delete_link = delete_link_meeting  # type: ignore[method-assign]
    assert driver.remove_network("p_default", "p")
    assert sorted(met) == ["bridge", "iptables-restore", "nft"]
    assert info.bridge not in links.links and runner.tables == {} and runner.iptables_rules == []


def test_shim_goes_to_forward_without_docker_user_and_not_for_internal_outbound() -> None:
    driver, _, runner = make(forward_policy="drop", docker_user=False)
    driver.create_network(NetworkSpec(project="p", name="p_back", internal=True))
    assert len(runner.iptables_rules) == 1 and runner.iptables_rules[0][0] == "FORWARD"


def test_external_network() -> None:
    driver, links, _ = make()
    with pytest.raises(
        NotFoundError, match=re.escape("network shared declared as external, but could not be found")
    ):
        driver.create_network(NetworkSpec(project="p", name="shared", external=True))
    made = driver.create_network(NetworkSpec(project="q", name="shared"))
    assert driver.create_network(NetworkSpec(project="p", name="shared", external=True)) == made
    assert not driver.remove_network("shared", project="p")
    assert made.bridge in links.links


def test_recreates_a_vanished_bridge_with_the_same_subnet() -> None:
    driver, links, runner = make(forward_policy="drop", docker_user=True)
    info = driver.create_network(NetworkSpec(project="p", name="p_default"))
    del links.links[info.bridge]
    again = driver.create_network(NetworkSpec(project="p", name="p_default"))
    assert again.subnets == info.subnets and info.bridge in links.links
    assert len(runner.iptables_rules) == 3  # the old shim was replaced, not stacked
    assert driver.remove_network("p_default")
    assert runner.iptables_rules == [] and runner.tables == {}


def test_network_modes_and_restore_dns() -> None:
    driver, links, _ = make()
    driver.prepare_mode("none", NS)
    driver.prepare_mode("host", None)
    driver.prepare_mode("container:abc", None)
    assert links.calls == [("loopback_up", NS)]
    with pytest.raises(PermanentError, match="unsupported network_mode"):
        driver.prepare_mode("bogus", NS)
    driver.create_network(NetworkSpec(project="p", name="p_default"))
    driver.connect("p-a-1", NS, [EndpointSpec(network="p_default", dns_names=("a",))])
    fresh = NetworkDriver(links=links, firewall=driver.firewall, store=driver.store)
    assert fresh.restore_dns() == 1
    found = fresh.dns.lookup("a", "172.18.0.99", "p_default")
    assert found is not None and found[0].ipv4 == "172.18.0.2"


def test_no_nft_means_no_rules_but_networks_still_work() -> None:
    links = RecordingLinkOps()
    runner = RecordingRunner(programs=())
    driver = NetworkDriver(links=links, firewall=Firewall(runner), store=MemoryLeaseStore())
    driver.create_network(NetworkSpec(project="p", name="p_default"))
    assert runner.calls == []
    assert driver.publish_dnat("c", [PortBinding("c", 80, "tcp", "0.0.0.0", 8080, "172.18.0.2")]) is None


def test_restarted_container_gets_its_addresses_back() -> None:
    driver, links, _ = make()
    driver.create_network(NetworkSpec(project="p", name="p_default"))
    driver.connect("p-a-1", NS, [EndpointSpec(network="p_default", dns_names=("a",))])
    [first] = driver.connect("p-b-1", NS, [EndpointSpec(network="p_default", dns_names=("b",))])
    with pytest.raises(ConflictError, match="already connected"):
        driver.connect("p-b-1", NS, [EndpointSpec(network="p_default")])
    # the container exits: its namespace, and with it the veth, is gone
    del links.links[first.host_ifname]
    [again] = driver.connect(
        "p-b-1", "/proc/99/ns/net", [EndpointSpec(network="p_default", dns_names=("b",))]
    )
    assert (again.ipv4, again.ifname) == (first.ipv4, "eth0")
    assert [a.ipv4 for a in driver.attachments("p-b-1")] == [first.ipv4]
    assert len(driver.dns.lookup("b", "172.18.0.2") or []) == 1


def test_prune_removes_leftovers_of_vanished_bridges_only() -> None:
    driver, links, runner = make(forward_policy="drop", docker_user=True)
    lost = driver.create_network(NetworkSpec(project="p", name="p_lost"))
    kept = driver.create_network(NetworkSpec(project="p", name="p_kept", bridge="br-kept.1"))
    runner.tables["orcp_0123456789ab"] = "a DNAT table: not judged"
    del links.links[lost.bridge]  # a crashed run's cleanup deleted the link, not the network
    rules, tables = driver.prune()
    assert tables == [f"orc_{lost.bridge}"]
    assert len(rules) == 3 and all(f"orc:{lost.bridge}" in r for r in rules)
    assert set(runner.tables) == {"orc_br_kept_1", "orcp_0123456789ab"}
    assert [r[-1] for r in runner.iptables_rules] == [f"orc:{kept.bridge}"] * 3
    assert driver.prune() == ([], [])


def test_failed_restart_keeps_the_old_lease() -> None:
    driver, links, _ = make()
    driver.create_network(NetworkSpec(project="p", name="p_default"))
    [first] = driver.connect("p-b-1", NS, [EndpointSpec(network="p_default")])
    del links.links[first.host_ifname]
    links.fail_on = "configure_container"
    with pytest.raises(PermanentError):
        driver.connect("p-b-1", NS, [EndpointSpec(network="p_default")])
    assert driver.store.read().ipam.networks["p_default"].addresses == {str(first.ipv4): "p-b-1"}
    assert driver.attachments("p-b-1") == []
    links.fail_on = None
    [again] = driver.connect("p-b-1", NS, [EndpointSpec(network="p_default")])
    assert again.ipv4 == first.ipv4


def test_the_default_route_skips_an_internal_first_network() -> None:
    driver, _, _ = make()
    driver.create_network(NetworkSpec(project="p", name="p_back", internal=True))
    driver.create_network(NetworkSpec(project="p", name="p_edge"))
    driver.create_network(NetworkSpec(project="p", name="p_more"))
    atts = driver.connect(
        "p-web-1",
        NS,
        [EndpointSpec(network="p_back"), EndpointSpec(network="p_edge"), EndpointSpec(network="p_more")],
    )
    assert [(a.network, a.default_route) for a in atts] == [
        ("p_back", False),
        ("p_edge", True),
        ("p_more", False),
    ]


def test_disconnect_deletes_links_outside_the_state_lock(tmp_path: Path) -> None:
    """Deleting a veth waits for the kernel (an RCU grace period); under the state lock the
    removes of a whole project queued behind each other. A failed delete keeps the record."""
    links = RecordingLinkOps(routes=[])
    store = FileLeaseStore(tmp_path)
    driver = NetworkDriver(links=links, firewall=Firewall(RecordingRunner()), store=store)
    driver.create_network(NetworkSpec(project="p", name="p_default"))
    [att] = driver.connect("p-web-1", NS, [EndpointSpec(network="p_default")])
    held_while_deleting: list[bool] = []
    real_delete = links.delete_link

    def delete_link(name: str) -> bool:
        held_while_deleting.append(store._thread_lock.locked())
        if name == att.host_ifname and len(held_while_deleting) == 1:
            raise PermanentError(f"deleting link {name}: device busy")
        return real_delete(name)

    links.delete_link = delete_link  # type: ignore[method-assign]
    with pytest.raises(PermanentError, match="device busy"):
        driver.disconnect("p-web-1")
    assert store.read().attachments["p-web-1"] == [att]  # kept for the retry
    assert driver.disconnect("p-web-1") == [att]
    assert held_while_deleting == [False, False]
    state = store.read()
    assert state.attachments == {} and "p-web-1" not in state.ipam.networks["p_default"].addresses.values()


def test_a_released_namespace_takes_its_veths_and_only_leftovers_are_deleted() -> None:
    driver, links, _ = make()
    driver.create_network(NetworkSpec(project="p", name="p_default"))
    driver.create_network(NetworkSpec(project="p", name="p_back"))
    [front, back] = driver.connect(
        "p-web-1", NS, [EndpointSpec(network="p_default"), EndpointSpec(network="p_back")]
    )
    links.release_netns(NS)
    links.calls.clear()
    driver.disconnect("p-web-1", namespace_released=True)
    # the teardown took both: nothing to delete one by one
    assert links.calls == [("wait_gone", (front.host_ifname, back.host_ifname))]

    [again] = driver.connect("p-api-1", NS, [EndpointSpec(network="p_default")])
    links.calls.clear()
    driver.disconnect("p-api-1", namespace_released=True)  # something still holds the namespace
    assert links.calls == [("wait_gone", (again.host_ifname,)), ("delete_link", again.host_ifname)]
    assert driver.store.read().attachments == {}


def test_two_state_roots_creating_networks_at_once_get_different_subnets(tmp_path: Path) -> None:
    """Each root leases from its own state file; only the host's routes tell them apart, and a
    bridge's route exists only once it is made. A host-wide lock spans choosing the subnet and
    making the bridge, so a second root never picks what the first is about to take."""
    links = RecordingLinkOps(routes=[])
    at_the_routes = threading.Barrier(2, timeout=0.5)

    def meet() -> None:  # without the lock both read the routes before either bridge exists
        with contextlib.suppress(threading.BrokenBarrierError):
            at_the_routes.wait()

    links.on_host_routes = meet
    drivers = [
        NetworkDriver(
            links=links,
            firewall=Firewall(RecordingRunner()),
            store=MemoryLeaseStore(),
            subnet_lock=tmp_path / "subnets.lock",
        )
        for _ in range(2)
    ]
    infos: list[object] = []
    threads = [
        threading.Thread(
            target=lambda d=d, n=n: infos.append(
                d.create_network(NetworkSpec(project=n, name=f"{n}_default"))
            )
        )
        for n, d in zip(("a", "b"), drivers, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    subnets = [info.subnets for info in infos]  # type: ignore[attr-defined]
    assert len(subnets) == 2 and subnets[0] != subnets[1], subnets
