"""Which created containers the kernel runtime may prepare ahead of their start: not one that
joins another container's namespaces (``network_mode``/``ipc``/``pid`` ``service:X`` or
``container:X``), whose preparation needs that container's process running."""

from __future__ import annotations

from orchestrator.model.service import Service
from orchestrator.reconciler.adapter import _joins_a_peer
from orchestrator.reconciler.desired import from_loaded
from orchestrator.stack.loader import LoadOptions, load
from orchestrator.stack.source import MemoryFileSource

COMPOSE = """
services:
  app: {image: busybox}
  sidecar: {image: busybox, network_mode: "service:app"}
  ipc_peer: {image: busybox, ipc: "container:other"}
  pid_peer: {image: busybox, pid: "service:app"}
  hosted: {image: busybox, network_mode: host, ipc: shareable, pid: host}
"""


def test_only_services_joining_a_peer_are_not_prepared_ahead() -> None:
    spec = from_loaded(
        load(LoadOptions(cwd="/srv/p", environ={}), MemoryFileSource({"/srv/p/compose.yaml": COMPOSE}))
    )

    def joins(name: str) -> bool:
        source = spec.behaviour(name).source
        assert isinstance(source, Service)
        return _joins_a_peer(source)

    assert [n for n in ("app", "sidecar", "ipc_peer", "pid_peer", "hosted") if joins(n)] == [
        "sidecar",
        "ipc_peer",
        "pid_peer",
    ]
