"""nftables and iptables rule planning (pure text)."""

from __future__ import annotations

from orchestrator.runtime.network.fake import RecordingRunner
from orchestrator.runtime.network.firewall import (
    DnatRule,
    Firewall,
    dnat_ruleset,
    forward_shim,
    network_ruleset,
)
from orchestrator.runtime.network.naming import check_ifname, mac_for, nft_table_name


def test_network_ruleset_is_an_atomic_replace() -> None:
    text = network_ruleset("orc_br0", "br0", ["10.1.0.0/24", "fd00::/64"], internal=False)
    lines = text.splitlines()
    # Made if missing and emptied, not deleted: a deletion's commit waits for an RCU grace period.
    assert lines[:3] == ["add table inet orc_br0", "flush table inet orc_br0", "table inet orc_br0 {"]
    assert not any(line.startswith("delete") for line in lines)
    assert '    ip saddr 10.1.0.0/24 oifname != "br0" masquerade' in lines
    assert '    ip6 saddr fd00::/64 oifname != "br0" masquerade' in lines


def test_dnat_ruleset_leaves_loopback_and_ipv6_to_the_proxy() -> None:
    text = dnat_ruleset(
        "orc_p1",
        [
            DnatRule(None, 8080, "tcp", "10.1.0.2", 80),
            DnatRule("192.0.2.2", 5353, "udp", "10.1.0.2", 53),
            DnatRule("127.0.0.1", 9000, "tcp", "10.1.0.2", 90),
            DnatRule("::1", 9001, "tcp", "10.1.0.2", 91),
        ],
    )
    assert "fib daddr type local tcp dport 8080 counter dnat ip to 10.1.0.2:80" in text
    assert "ip daddr != 127.0.0.0/8 fib daddr type local tcp dport 8080" in text
    assert "ip daddr 192.0.2.2 udp dport 5353 counter dnat ip to 10.1.0.2:53" in text
    assert "9000" not in text and "9001" not in text


def test_forward_shim() -> None:
    assert forward_shim("br0", internal=True, chain="FORWARD") == [
        "FORWARD -i br0 -o br0 -j ACCEPT -m comment --comment orc:br0"
    ]
    assert len(forward_shim("br0", internal=False, chain="DOCKER-USER")) == 3


def test_names() -> None:
    assert nft_table_name("br-x.1") == "orc_br_x_1"
    assert check_ifname("eth0") == "eth0"
    assert mac_for("10.0.0.1", "x") == "02:42:0a:00:00:01"
    mac = mac_for(None, "seed")
    assert mac == mac_for(None, "seed") and int(mac[:2], 16) & 0x03 == 0x02


def test_the_shim_is_one_listing_and_one_restore_that_replaces_stale_rules() -> None:
    """A rebuilt network's rules replace what a lost bridge left (never stacked, never partial),
    in one ``iptables-restore``; the chain comes from the same single listing."""
    runner = RecordingRunner(forward_policy="drop", docker_user_chain=True)
    firewall = Firewall(runner)
    stale = forward_shim("br0", internal=False, chain="DOCKER-USER")[:1]
    firewall.add_shim(stale)
    runner.calls.clear()
    listing = firewall.filter_rules()
    chain = firewall.forward_shim_chain(listing)
    assert chain == "DOCKER-USER"
    specs = forward_shim("br0", internal=False, chain=chain)
    firewall.add_shim(specs, listing)
    assert [call[0][0] for call in runner.calls] == ["iptables", "iptables-restore"]
    assert sorted(runner.iptables_rules) == sorted(tuple(s.split(" ")) for s in specs)
    assert firewall.forward_shim_chain(["-P FORWARD ACCEPT", "-N DOCKER-USER"]) is None
    assert firewall.forward_shim_chain(["-P FORWARD DROP"]) == "FORWARD"


def test_removing_the_shim_is_one_restore_and_survives_a_rule_already_gone() -> None:
    runner = RecordingRunner(forward_policy="drop", docker_user_chain=True)
    firewall = Firewall(runner)
    specs = forward_shim("br0", internal=False, chain="DOCKER-USER")
    firewall.add_shim(specs)
    runner.calls.clear()
    firewall.remove_shim(specs)
    assert [call[0][0] for call in runner.calls] == ["iptables-restore"]
    assert runner.iptables_rules == []
    firewall.add_shim(specs)
    firewall.remove_shim(specs[:1])
    runner.calls.clear()
    firewall.remove_shim(specs)  # the first is gone: the restore fails whole, the rest go singly
    assert runner.iptables_rules == []
    assert [call[0][0] for call in runner.calls] == ["iptables-restore", "iptables", "iptables", "iptables"]
