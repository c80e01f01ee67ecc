"""A recording, scriptable :class:`~orchestrator.reconciler.ports.ContainerRuntime` for tests.

Owned here: :class:`FakeRuntime`. It records every call as one line (``create demo-web-1``,
``stop demo-db-1 SIGTERM 10``) in ``calls``, keeps containers as plain objects, and runs their
"processes" on the injected clock: a :class:`ProcessScript` per service says how long each run
lasts and with which code it ends, how it answers SIGTERM, and what its health probe returns.
``fail`` queues exceptions for a given call (``fail["start demo-web-1"] = [TemporaryError(...)]``).
Shipped in the package so the reconciler, supervisor and CLI verbs are tested without root.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio

from orchestrator.errors import NotFoundError, OrcError
from orchestrator.reconciler.clock import Clock
from orchestrator.reconciler.ports import (
    ContainerRequest,
    CreatedContainer,
    ExecRequest,
    ExecResult,
    ExitStatus,
    ImageOptions,
    NetworkInfo,
    StartedContainer,
)
from orchestrator.state.records import ContainerRecord, EndpointRecord


@dataclass
class ProcessScript:
    """How a service's process behaves in the fake. ``runs`` lists (seconds alive, exit code) for
    successive starts; past the list, ``forever`` or the last entry repeats. ``health`` maps the
    probe number (1-based) to an exit code; ``health_default`` answers the rest."""

    runs: list[tuple[float, int]] = field(default_factory=list)
    forever: bool = True
    term_exit_code: int = 143
    ignores_term: bool = False
    health: dict[int, int] = field(default_factory=dict)
    health_default: int = 0
    health_delay: float = 0.0
    oom: bool = False


@dataclass
class _Process:
    pid: int
    start_time: int
    lifetime: float | None
    natural_code: int
    exited: anyio.Event = field(default_factory=anyio.Event)
    status: ExitStatus | None = None

    def end(self, status: ExitStatus) -> None:
        if self.status is None:
            self.status = status
            self.exited.set()


@dataclass
class _Container:
    record_id: str
    service: str
    starts: int = 0
    probes: int = 0
    process: _Process | None = None


class FakeRuntime:
    def __init__(
        self,
        clock: Clock,
        *,
        images: dict[str, str] | None = None,
        registry: dict[str, str] | None = None,
        scripts: dict[str, ProcessScript] | None = None,
    ) -> None:
        self.clock = clock
        self.images = dict(images or {})
        self.registry = dict(registry or {})
        self.scripts = scripts or {}
        self.calls: list[str] = []
        self.fail: dict[str, list[OrcError]] = {}
        self.containers: dict[str, _Container] = {}
        self.networks: set[str] = set()
        self.volumes: set[str] = set()
        self.described: dict[str, tuple[str, ...]] = {}
        self.network_definitions: dict[str, object] = {}
        # The HEALTHCHECK each image carries (Compose's shape, durations in seconds).
        self.image_healthchecks: dict[str, dict[str, object]] = {}
        # Ports each container publishes (by container name), for `port`.
        self.published: dict[str, tuple[int, ...]] = {}
        self.attached: dict[str, tuple[int, int, int]] = {}
        self._pids = itertools.count(1000)
        self._ids = itertools.count(1)
        self.on_call: Callable[[str], None] | None = None
        # Seconds (on the clock) that each kind of call takes, e.g. {"create": 0.5}; with them,
        # ``max_active`` shows how many calls of that kind ran at once.
        self.delays: dict[str, float] = {}
        self.active = 0
        self.max_active = 0
        # Containers removed for a recreate, whose anonymous volumes were kept for the next one.
        self.kept_anonymous_volumes: list[str] = []
        # The image options of the last ``configure_images`` (None: never configured).
        self.image_options: ImageOptions | None = None
        # What the next ``settle`` reports as failed teardowns of removed containers.
        self.teardown_failures: dict[str, str] = {}
        # Containers whose start was prepared ahead (``prepare``, not in ``calls``: it changes
        # nothing a test of the plan's order looks at), those still waiting for their start,
        # and those whose preparation ``settle`` undid because no start took it.
        self.prepared: list[str] = []
        self.preparing: set[str] = set()
        self.undone_preparations: list[str] = []

    def _record_call(self, line: str) -> None:
        self.calls.append(line)
        if self.on_call is not None:
            self.on_call(line)
        queued = self.fail.get(line)
        if queued:
            raise queued.pop(0)

    async def _take_time(self, kind: str) -> None:
        delay = self.delays.get(kind)
        if not delay:
            return
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.clock.sleep(delay)
        finally:
            self.active -= 1

    def script(self, service: str) -> ProcessScript:
        return self.scripts.setdefault(service, ProcessScript())

    async def local_images(self, references: Sequence[str]) -> dict[str, str]:
        return {r: self.images[r] for r in references if r in self.images}

    async def pull(self, image: str) -> str:
        self._record_call(f"pull {image}")
        await self._take_time("pull")
        if image not in self.registry:
            raise NotFoundError(f"image {image} not found in the registry")
        self.images[image] = self.registry[image]
        return self.images[image]

    async def configure_images(self, options: ImageOptions) -> None:
        self.image_options = options

    async def create_network(self, project: str, name: str) -> NetworkInfo:
        self._record_call(f"create-network {name}")
        await self._take_time("create-network")
        self.networks.add(name)
        return NetworkInfo(name, f"orc-{len(self.networks)}", "172.30.0.0/24", "172.30.0.1")

    async def remove_network(self, project: str, name: str) -> None:
        self._record_call(f"remove-network {name}")
        self.networks.discard(name)

    async def create_volume(self, project: str, name: str) -> None:
        self._record_call(f"create-volume {name}")
        self.volumes.add(name)

    async def remove_volume(self, project: str, name: str) -> None:
        self._record_call(f"remove-volume {name}")
        self.volumes.discard(name)

    async def create(self, request: ContainerRequest) -> CreatedContainer:
        self._record_call(f"create {request.name}")
        await self._take_time("create")
        if request.image not in self.images:
            raise NotFoundError(f"image {request.image} is not present")
        container_id = f"{next(self._ids):064x}"
        self.containers[request.name] = _Container(container_id, request.service)
        return CreatedContainer(
            container_id,
            image_digest=self.images[request.image],
            healthcheck=self.image_healthchecks.get(request.image),
        )

    def prepare(self, record: ContainerRecord) -> None:
        self.prepared.append(record.name)
        self.preparing.add(record.name)

    async def start(self, record: ContainerRecord) -> StartedContainer:
        self.preparing.discard(record.name)
        self._record_call(f"start {record.name}")
        await self._take_time("start")
        container = self._container(record)
        script = self.script(container.service)
        run = container.starts
        container.starts += 1
        if run < len(script.runs):
            lifetime: float | None
            lifetime, code = script.runs[run]
        elif script.forever or not script.runs:
            lifetime, code = None, 0
        else:
            lifetime, code = script.runs[-1]
        pid = next(self._pids)
        container.process = _Process(pid, int(self.clock.now() * 100), lifetime, code)
        return StartedContainer(pid, container.process.start_time, (EndpointRecord("default", "eth0"),))

    async def wait(self, record: ContainerRecord) -> ExitStatus:
        process = self._container(record).process
        if process is None:
            raise NotFoundError(f"container {record.name} has no process")
        if process.status is None and process.lifetime is not None:
            async with anyio.create_task_group() as group:

                async def natural_exit() -> None:
                    assert process.lifetime is not None
                    await self.clock.sleep(process.lifetime)
                    script = self.script(self._container(record).service)
                    process.end(ExitStatus(process.natural_code, oom_killed=script.oom))

                async def signalled() -> None:
                    await process.exited.wait()
                    group.cancel_scope.cancel()

                group.start_soon(natural_exit)
                group.start_soon(signalled)
        await process.exited.wait()
        assert process.status is not None
        # ``delays["wait"]``: the watcher hears of an exit that long after it (the hops of the
        # real runtime's exit report); a stop has seen it by then.
        await self._take_time("wait")
        return process.status

    async def stop(self, record: ContainerRecord, signal: str, timeout: float) -> None:
        self._record_call(f"stop {record.name} {signal} {timeout:g}")
        container = self._container(record)
        process = container.process
        if process is None or process.status is not None:
            return
        script = self.script(container.service)
        if script.ignores_term:
            await self.clock.sleep(timeout)
            process.end(ExitStatus(137))
        else:
            process.end(ExitStatus(script.term_exit_code))

    async def kill(self, record: ContainerRecord, signal: str) -> None:
        self._record_call(f"kill {record.name} {signal}")
        process = self._container(record).process
        if process is not None:
            process.end(ExitStatus(137 if signal in ("SIGKILL", "KILL", "9") else 143))

    def crash(self, name: str, exit_code: int = 1) -> None:
        """Make a running container's process exit now (as if it crashed)."""
        process = self.containers[name].process
        assert process is not None
        process.end(ExitStatus(exit_code))

    async def remove(self, record: ContainerRecord, keep_anonymous_volumes: bool = False) -> None:
        self._record_call(f"remove {record.name}")
        if keep_anonymous_volumes:
            self.kept_anonymous_volumes.append(record.name)
        await self._take_time("remove")
        self.containers.pop(record.name, None)

    async def settle(self) -> dict[str, str]:
        self.undone_preparations += sorted(self.preparing)
        self.preparing.clear()
        failures, self.teardown_failures = self.teardown_failures, {}
        return failures

    async def exec(self, record: ContainerRecord, argv: Sequence[str], timeout: float) -> ExecResult:
        container = self._container(record)
        container.probes += 1
        script = self.script(container.service)
        if script.health_delay:
            await self.clock.sleep(script.health_delay)
        code = script.health.get(container.probes, script.health_default)
        return ExecResult(code, "ok" if code == 0 else "probe failed")

    async def exec_attached(self, record: ContainerRecord, request: ExecRequest) -> int:
        self._record_call(f"exec {record.name} {' '.join(request.argv)}")
        if self._container(record).process is None:
            raise NotFoundError(f"container {record.name} is not running")
        os.write(request.stdio[1], f"ran {' '.join(request.argv)}\n".encode())
        return 0

    def attach_next_start(self, name: str, stdio: tuple[int, int, int]) -> None:
        self.attached[name] = stdio

    def use_terminal(self, name: str) -> None:
        self._record_call(f"terminal {name}")

    async def pause(self, record: ContainerRecord) -> None:
        self._record_call(f"pause {record.name}")

    async def unpause(self, record: ContainerRecord) -> None:
        self._record_call(f"unpause {record.name}")

    async def top(self, record: ContainerRecord) -> list[tuple[int, str]]:
        process = self._container(record).process
        return [(process.pid, "fake-process")] if process is not None and process.status is None else []

    def port(self, record: ContainerRecord, target: int, protocol: str) -> list[str]:
        return [f"0.0.0.0:{10000 + target}"] if target in self.published.get(record.name, ()) else []

    def describe(self, project: str, service: str, source: object | None, networks: tuple[str, ...]) -> None:
        self.described[service] = networks

    def describe_networks(self, project: str, networks: Mapping[str, object]) -> None:
        self.network_definitions.update(networks)

    def alive(self, record: ContainerRecord) -> bool:
        container = self.containers.get(record.name)
        process = container.process if container else None
        return process is not None and process.status is None and process.pid == record.pid

    def _container(self, record: ContainerRecord) -> _Container:
        container = self.containers.get(record.name)
        if container is None:
            raise NotFoundError(f"no such container: {record.name}")
        return container
