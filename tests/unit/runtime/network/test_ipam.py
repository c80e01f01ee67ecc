"""IPAM: subnets from pools avoiding host routes and other networks, leases, static addresses."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import ConflictError, PermanentError
from orchestrator.runtime.network import ipam
from orchestrator.runtime.network.spec import IpamPool, NetworkSpec


def net(name: str, *pools: IpamPool, v6: bool = False) -> NetworkSpec:
    return NetworkSpec(project="p", name=name, pools=pools, enable_ipv6=v6)


def test_pool_skips_host_routes_and_other_networks() -> None:
    book = ipam.IpamBook()
    routes = [ipaddress.ip_network("172.17.0.0/16"), ipaddress.ip_network("192.0.2.0/24")]
    a = ipam.reserve_network(book, net("p_a"), routes)
    b = ipam.reserve_network(book, net("p_b"), routes)
    assert [s.subnet for s in a.subnets] == ["172.18.0.0/16"]
    assert a.subnets[0].gateway == "172.18.0.1"
    assert [s.subnet for s in b.subnets] == ["172.19.0.0/16"]
    # a route inside a candidate also disqualifies it
    c = ipam.reserve_network(book, net("p_c"), [*routes, ipaddress.ip_network("172.20.5.0/24")])
    assert c.subnets[0].subnet == "172.21.0.0/16"


def test_existing_network_keeps_its_subnet() -> None:
    book = ipam.IpamBook()
    first = ipam.reserve_network(book, net("p_a"))
    again = ipam.reserve_network(book, net("p_a"), [ipaddress.ip_network(first.subnets[0].subnet)])
    assert again.subnets[0].subnet == first.subnets[0].subnet


def test_pool_exhaustion_is_reported() -> None:
    book = ipam.IpamBook()
    pools = [ipam.PoolRange("10.9.0.0/23", 24)]
    ipam.reserve_network(book, net("p_a"), pools_v4=pools)
    ipam.reserve_network(book, net("p_b"), pools_v4=pools)
    with pytest.raises(
        PermanentError, match=re.escape("no free subnet left in the address pools (10.9.0.0/23)")
    ):
        ipam.reserve_network(book, net("p_c"), pools_v4=pools)


def test_configured_subnet_gateway_range_and_aux() -> None:
    book = ipam.IpamBook()
    pool = IpamPool(
        "172.28.0.0/16", gateway="172.28.5.254", ip_range="172.28.5.0/24", aux_addresses=("172.28.5.0",)
    )
    lease = ipam.reserve_network(book, net("p_a", pool))
    assert lease.subnets[0].gateway == "172.28.5.254"
    addr4, addr6 = ipam.lease_addresses(book, "p_a", "c1")
    assert (addr4, addr6) == ("172.28.5.1", None)  # .0 is an aux address, ip_range limits dynamic ones
    static, _ = ipam.lease_addresses(book, "p_a", "c2", ipv4="172.28.9.9")  # static may be outside ip_range
    assert static == "172.28.9.9"


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        (IpamPool("172.28.0.0/33"), "invalid subnet"),
        (IpamPool("172.28.0.1/16"), "invalid subnet"),
        (IpamPool("172.28.0.0/16", gateway="10.0.0.1"), "gateway 10.0.0.1 is not in subnet"),
        (IpamPool("172.28.0.0/16", ip_range="10.0.0.0/24"), "ip_range 10.0.0.0/24 is not inside"),
        (IpamPool("172.28.0.0/16", aux_addresses=("10.1.1.1",)), "aux address 10.1.1.1 is not in subnet"),
    ],
)
def test_bad_ipam_config(pool: IpamPool, message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        ipam.reserve_network(ipam.IpamBook(), net("p_a", pool))


def test_overlapping_configured_subnet_names_the_other_network() -> None:
    book = ipam.IpamBook()
    ipam.reserve_network(book, net("p_a", IpamPool("10.1.0.0/16")))
    with pytest.raises(ConflictError, match=re.escape("subnet 10.1.2.0/24 overlaps network p_a")):
        ipam.reserve_network(book, net("p_b", IpamPool("10.1.2.0/24")))


def test_lease_is_stable_per_owner_and_released() -> None:
    book = ipam.IpamBook()
    ipam.reserve_network(book, net("p_a", IpamPool("10.1.0.0/29")))
    a, _ = ipam.lease_addresses(book, "p_a", "c1")
    b, _ = ipam.lease_addresses(book, "p_a", "c2")
    assert (a, b) == ("10.1.0.2", "10.1.0.3")  # .0 network, .1 gateway
    assert ipam.lease_addresses(book, "p_a", "c1")[0] == a
    assert ipam.release_addresses(book, "p_a", "c1") == [a]
    assert ipam.lease_addresses(book, "p_a", "c3")[0] == a
    for i in range(4, 7):
        ipam.lease_addresses(book, "p_a", f"c{i}")
    with pytest.raises(
        PermanentError, match=re.escape("no free address left in 10.1.0.0/29")
    ):  # .7 is broadcast
        ipam.lease_addresses(book, "p_a", "c9")


def test_static_address_conflicts() -> None:
    book = ipam.IpamBook()
    ipam.reserve_network(book, net("p_a", IpamPool("10.1.0.0/24")))
    ipam.lease_addresses(book, "p_a", "c1", ipv4="10.1.0.50")
    with pytest.raises(ConflictError, match=re.escape("10.1.0.50 is already in use by c1")):
        ipam.lease_addresses(book, "p_a", "c2", ipv4="10.1.0.50")
    with pytest.raises(ConflictError, match="reserved"):
        ipam.lease_addresses(book, "p_a", "c2", ipv4="10.1.0.1")
    with pytest.raises(PermanentError, match="not in subnet"):
        ipam.lease_addresses(book, "p_a", "c2", ipv4="10.2.0.5")
    with pytest.raises(PermanentError, match="IPv6 is not enabled"):
        ipam.lease_addresses(book, "p_a", "c2", ipv6="fd00::5")
    # dynamic allocation skips the static one
    assert ipam.lease_addresses(book, "p_a", "c3")[0] == "10.1.0.2"


def test_ipv6_from_pool_and_static() -> None:
    book = ipam.IpamBook()
    lease = ipam.reserve_network(book, net("p_a", v6=True))
    assert [ipaddress.ip_network(s.subnet).version for s in lease.subnets] == [4, 6]
    assert lease.subnets[1].subnet == "fd6f:7263::/64"
    a4, a6 = ipam.lease_addresses(book, "p_a", "c1")
    assert a4 == "172.17.0.2" and a6 == "fd6f:7263::2"
    _, s6 = ipam.lease_addresses(book, "p_a", "c2", ipv6="fd6f:7263::99")
    assert s6 == "fd6f:7263::99"


def test_book_round_trips_json() -> None:
    book = ipam.IpamBook()
    ipam.reserve_network(book, net("p_a", IpamPool("10.1.0.0/24", ip_range="10.1.0.128/25"), v6=True))
    ipam.lease_addresses(book, "p_a", "c1")
    assert ipam.IpamBook.from_json(book.to_json()).to_json() == book.to_json()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["lease", "release"]), st.integers(0, 9)), max_size=60))
def test_leases_never_collide(ops: list[tuple[str, int]]) -> None:
    book = ipam.IpamBook()
    ipam.reserve_network(book, net("p_a", IpamPool("10.1.0.0/28")))
    held: dict[str, str] = {}
    for op, n in ops:
        owner = f"c{n}"
        if op == "lease":
            lowest_free = next(
                str(a)
                for a in ipaddress.ip_network("10.1.0.0/28")
                if str(a) not in {"10.1.0.0", "10.1.0.1", "10.1.0.15", *held.values()}
            )
            addr, _ = ipam.lease_addresses(book, "p_a", owner)
            assert addr is not None
            assert held.get(owner, lowest_free) == addr  # a new lease takes the lowest free address
            held[owner] = addr
        else:
            ipam.release_addresses(book, "p_a", owner)
            held.pop(owner, None)
        assert len(set(held.values())) == len(held)
        assert not {"10.1.0.0", "10.1.0.1", "10.1.0.15"} & set(held.values())


@given(st.integers(0, 2**32 - 1))
def test_ipv4_text_is_the_addresses_own(value: int) -> None:
    assert ipam._ipv4_text(value) == str(ipaddress.IPv4Address(value))


@pytest.mark.parametrize(
    "text", ["10.0.0.0/24", "10.0.0.1", "fd00::/64", "fd00::1", "::", "::ffff:10.0.0.1", "0.0.0.0/0"]
)
def test_ip_version_of_canonical_text_is_what_parsing_says(text: str) -> None:
    assert ipam.ip_version(text) == ipaddress.ip_network(text, strict=False).version
