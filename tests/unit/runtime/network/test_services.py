"""NetworkServices on loopback: resolver lifecycle, port publishing, ``orc port``."""

from __future__ import annotations

import socket

import anyio
import pytest
from dnslib import DNSRecord

from orchestrator.errors import NotFoundError, TemporaryError
from orchestrator.runtime.network.dnsfiles import HostResolvConf
from orchestrator.runtime.network.driver import NetworkDriver
from orchestrator.runtime.network.fake import RecordingLinkOps, RecordingRunner
from orchestrator.runtime.network.firewall import Firewall
from orchestrator.runtime.network.leases import MemoryLeaseStore
from orchestrator.runtime.network.ports import parse_port
from orchestrator.runtime.network.services import NetworkServices
from orchestrator.runtime.network.spec import NetworkInfo

NO_UPSTREAMS = HostResolvConf((), (), ())


def _driver() -> NetworkDriver:
    return NetworkDriver(
        links=RecordingLinkOps(), firewall=Firewall(RecordingRunner()), store=MemoryLeaseStore()
    )


def _info(gateway: str = "127.0.0.1") -> NetworkInfo:
    return NetworkInfo(
        "p_default", "p", "orcx", ("127.0.0.0/8",), (gateway,), (None,), False, False, 1500, False, True
    )


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_resolver_starts_answers_and_stops() -> None:
    driver = _driver()
    driver.dns.add("p-web-1", "p_default", ["web"], "10.0.0.2", None)
    port = _free_udp_port()

    async def main() -> None:
        async with NetworkServices(driver, NO_UPSTREAMS, dns_port=port) as services:
            await services.start_dns(_info())
            await services.start_dns(_info())  # idempotent
            async with await anyio.create_connected_udp_socket("127.0.0.1", port) as client:
                await client.send(DNSRecord.question("web").pack())
                with anyio.fail_after(5):
                    reply = DNSRecord.parse(await client.receive())
            assert [str(rr.rdata) for rr in reply.rr] == ["10.0.0.2"]
            services.stop_dns("p_default")
            await anyio.sleep(0.05)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
                again.bind(("127.0.0.1", port))  # the resolver let go of its socket

    anyio.run(main)


def test_resolver_port_taken_is_temporary() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]

        async def main() -> None:
            async with NetworkServices(_driver(), NO_UPSTREAMS, dns_port=port) as services:
                with pytest.raises(TemporaryError, match=f"cannot serve DNS on its gateway port {port}"):
                    await services.start_dns(_info())

        anyio.run(main)


def test_publish_port_lookup_and_unpublish() -> None:
    async def main() -> None:
        async with NetworkServices(_driver(), NO_UPSTREAMS) as services:
            bindings = await services.publish("p-web-1", "127.0.0.1", parse_port("127.0.0.1::80"))
            assert services.port("p-web-1", 80) == [f"127.0.0.1:{bindings[0].host_port}"]
            with pytest.raises(NotFoundError):
                services.port("p-web-1", 80, "udp")
            await services.unpublish("p-web-1")
            assert services.proxy.bindings() == []

    anyio.run(main)
