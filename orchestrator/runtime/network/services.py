"""The network's long-running parts in the supervisor: DNS resolvers and the port proxy.

``NetworkServices`` is an async context manager owning one task group. ``start_dns(info)`` binds
orc's resolver on each gateway of a network (UDP and TCP; the bind happens before it returns, so
a failure is the caller's), ``stop_dns`` stops it; ``publish``/``unpublish`` drive the
``PortProxy`` (and, with ``dnat=True``, the driver's nftables DNAT table too). Leaving the
context stops everything and closes every socket. Called by the supervisor's event loop.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from types import TracebackType

import anyio
import anyio.abc

from orchestrator.errors import ConflictError, TemporaryError

from .dns import DnsServer
from .dnsfiles import HostResolvConf
from .driver import NetworkDriver
from .proxy import PortProxy
from .spec import NetworkInfo, PortBinding, PortSpec


class NetworkServices:
    def __init__(
        self,
        driver: NetworkDriver,
        host_resolvers: HostResolvConf,
        dns_port: int = 53,
        upstream_port: int = 53,
        rng: random.Random | None = None,
        udp_idle: float = 90.0,
    ) -> None:
        self.driver = driver
        self.dns_port = dns_port
        self.server = DnsServer(driver.dns, host_resolvers.nameservers, rng=rng, upstream_port=upstream_port)
        self._udp_idle = udp_idle
        self._tg: anyio.abc.TaskGroup | None = None
        self._proxy: PortProxy | None = None
        self._dns: dict[str, list[anyio.CancelScope]] = {}

    async def __aenter__(self) -> NetworkServices:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._proxy = PortProxy(self._tg, udp_idle=self._udp_idle)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._tg is not None and self._proxy is not None
        await self._proxy.aclose()
        for name in list(self._dns):
            self.stop_dns(name)
        return await self._tg.__aexit__(exc_type, exc, tb)

    @property
    def proxy(self) -> PortProxy:
        assert self._proxy is not None, "use NetworkServices as an async context manager"
        return self._proxy

    async def start_dns(self, info: NetworkInfo) -> None:
        """Serve DNS on every gateway of ``info`` (idempotent); bound before this returns."""
        assert self._tg is not None
        if info.name in self._dns:
            return
        scopes: list[anyio.CancelScope] = []
        try:
            for gateway in info.gateways:
                scope = anyio.CancelScope()
                await self._tg.start(self._serve_in, scope, gateway, info.name)
                scopes.append(scope)
        except OSError as exc:
            for scope in scopes:
                scope.cancel()
            raise TemporaryError(
                f"network {info.name}: cannot serve DNS on its gateway port {self.dns_port}: {exc}",
                retry_after=1.0,
            ) from exc
        self._dns[info.name] = scopes

    async def _serve_in(
        self,
        scope: anyio.CancelScope,
        address: str,
        network: str,
        *,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        with scope:
            await self.server.serve(address, network, self.dns_port, task_status=task_status)

    def stop_dns(self, network: str) -> None:
        for scope in self._dns.pop(network, []):
            scope.cancel()

    async def publish(
        self, container: str, container_ip: str, specs: Sequence[PortSpec], dnat: bool = False
    ) -> list[PortBinding]:
        bindings = self.proxy.publish(container, container_ip, specs)
        if dnat:
            try:
                await anyio.to_thread.run_sync(self.driver.publish_dnat, container, bindings)
            except BaseException:
                await self.proxy.unpublish(container)
                raise
        return bindings

    async def unpublish(self, container: str) -> None:
        await self.proxy.unpublish(container)

    def port(self, container: str, target: int, protocol: str = "tcp") -> list[str]:
        """``orc port``: the host address(es) for one of the container's published ports."""
        from .ports import lookup_port

        if protocol not in ("tcp", "udp"):
            raise ConflictError(f"unknown protocol {protocol}")
        return lookup_port(self.proxy.bindings(container), target, protocol, container)  # type: ignore[arg-type]
