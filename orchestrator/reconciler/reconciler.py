"""The reconcile loop: observe → plan → execute → observe again, and supervision of what runs.

Owned here: :class:`Reconciler`. ``up``/``down`` converge a project (level-triggered: after
executing a plan it observes and plans again until nothing is left to do or a pass makes no
progress); ``execute`` carries a :class:`~orchestrator.planner.plan.Plan` out as a DAG (each action
starts when the actions it waits for are done, a capacity limiter bounds concurrent driver calls,
dependency gates wait on the :class:`~orchestrator.reconciler.board.ContainerBoard`); every started
container gets a watcher task that records its exit, runs its health checks (Compose's through
exec, or orc's own x-orc probe / ready_log from :mod:`orchestrator.reconciler.probes`) and applies
its restart policy through :class:`~orchestrator.planner.restart.RestartTracker` (plus restarts
for x-orc ``restart_on_unhealthy``).

Failures: a ``TemporaryError`` is retried with backoff (its ``retry_after`` at least); a
``PermanentError`` fails that action, and every action that waits on it is skipped with the reason.

The supervisor (``daemon``) and the foreground ``up`` own a Reconciler inside
:meth:`Reconciler.session`, whose task group keeps the watchers alive.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from dataclasses import replace as dataclass_replace
from typing import Any

import anyio
from anyio.abc import TaskGroup

from orchestrator.errors import OrcError, PermanentError, TemporaryError, UsageError
from orchestrator.model import FrozenDict, Service
from orchestrator.planner.observed import DesiredService, ObservedContainer, ObservedState
from orchestrator.planner.plan import (
    Action,
    DownOptions,
    Gate,
    Plan,
    UpOptions,
    plan_down,
    plan_remove,
    plan_start,
    plan_stop,
    plan_up,
)
from orchestrator.planner.restart import RestartTracker
from orchestrator.reconciler.board import FAIL, OK, ContainerBoard, ContainerView, gate_verdict
from orchestrator.reconciler.clock import Clock, SystemClock
from orchestrator.reconciler.events import Event, EventBus
from orchestrator.reconciler.health import STARTING, UNHEALTHY, HealthCheck, Probe, monitor_health
from orchestrator.reconciler.ports import ContainerRequest, ContainerRuntime, ExecRequest, ExecResult
from orchestrator.reconciler.probes import (
    NetnsProbeDriver,
    ProbeDriver,
    extension_of,
    monitor_ready_log,
    probe_function,
    unhealthy_restart_decision,
    validate_orc_extensions,
    with_orc_health,
)
from orchestrator.reconciler.project import ProjectSpec, ServiceBehaviour
from orchestrator.state.records import ContainerRecord, NetworkRecord, ProjectRecord
from orchestrator.state.store import StateStore

RUNNING_STATES = ("running", "restarting", "paused")
MAX_ATTEMPTS = 5
MAX_PASSES = 3


@dataclass
class ExecutionReport:
    """What happened to each action of one plan."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped

    def merge(self, other: ExecutionReport) -> None:
        self.done.extend(other.done)
        self.failed.update(other.failed)
        self.skipped.update(other.skipped)
        self.warnings.extend(other.warnings)

    def raise_for_failures(self) -> None:
        if self.failed:
            lines = [f"{key}: {why}" for key, why in sorted(self.failed.items())]
            lines += [f"{key}: skipped, {why}" for key, why in sorted(self.skipped.items())]
            raise PermanentError("\n".join(lines))


# The plan actions `run` takes from the service's `up` plan before creating its container.
RUN_PREREQUISITES = frozenset({"pull", "create-network", "create-volume"})
# What a start's preparation waits to be done, not merely under way (it uses what they make).
_MADE_BEFORE_PREPARING = RUN_PREREQUISITES
# Seconds past the grace period after which a stop whose container is still watched is sent again.
STOP_RECHECK = 5.0


class Reconciler:
    def __init__(
        self,
        runtime: ContainerRuntime,
        store: StateStore,
        *,
        clock: Clock | None = None,
        bus: EventBus | None = None,
        wall: Callable[[], float] = time.time,
        concurrency: int = 8,
        probes: ProbeDriver | None = None,
    ) -> None:
        self.runtime = runtime
        self.probes: ProbeDriver = probes or NetnsProbeDriver()
        # Containers orc is stopping because they turned unhealthy (x-orc restart_on_unhealthy).
        self._unhealthy_stops: set[str] = set()
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.bus = bus or EventBus()
        self.wall = wall
        self.board = ContainerBoard()
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._group: TaskGroup | None = None
        self._records: dict[str, ContainerRecord] = {}
        self._trackers: dict[str, RestartTracker] = {}
        self._behaviours: dict[str, ServiceBehaviour] = {}
        self._stopping: set[str] = set()
        self._watch_done: dict[str, anyio.Event] = {}
        self._watch_scopes: dict[str, anyio.CancelScope] = {}
        # The restart delays being waited out, cancelled by a stop (as Docker does).
        self._backoffs: dict[str, anyio.CancelScope] = {}
        self._started_at: dict[str, float] = {}
        self._spec_behaviours: dict[str, ServiceBehaviour] = {}
        self._timeout_override: float | None = None
        self._renew_anon_volumes = False  # `up -V`, for the duration of that up

    # --- lifetime ----------------------------------------------------------------------------

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Reconciler]:
        """Keep container watchers running while the context is open; cancel them on exit
        (the containers keep running: a later session adopts them)."""
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield self
            finally:
                group.cancel_scope.cancel()
                self._group = None

    @contextmanager
    def parallelism(self, limit: int | None) -> Iterator[None]:
        """``--parallel``: at most ``limit`` driver calls at once (-1: no bound) while the block
        runs (one request), then the default again. None changes nothing."""
        if limit is None:
            yield
            return
        if limit == 0 or limit < -1:
            raise UsageError(f"invalid parallel limit {limit}: -1 (unlimited) or at least 1")
        default = self._limiter.total_tokens
        self._limiter.total_tokens = math.inf if limit == -1 else limit
        try:
            yield
        finally:
            self._limiter.total_tokens = default

    # --- observe -----------------------------------------------------------------------------

    async def observe(self, spec: ProjectSpec | None, project: str) -> ObservedState:
        """Read the state store, correct it against the kernel (dead pids), list local images."""
        containers = []
        for record in self.store.list_containers(project):
            record = self._records.get(record.name, record)
            if (
                record.status in RUNNING_STATES
                and record.name not in self._watch_done
                and not self.runtime.alive(record)
            ):
                record.status = "exited"
                record.pid = None
                record.finished_at = record.finished_at or self.wall()
                self.store.save_container(record)
            if record.name not in self._records:
                self._records[record.name] = record
                self.board.put(self._view(record))
            containers.append(_observed(record))
        project_record = self.store.load_project(project)
        networks = frozenset(n.name for n in project_record.networks) if project_record else frozenset()
        volumes = frozenset(project_record.volumes) if project_record else frozenset()
        references = sorted({s.image for s in spec.desired.services}) if spec else []
        images = await self.runtime.local_images(references) if references else {}
        return ObservedState(tuple(containers), networks, volumes, images)

    async def adopt(self, project: str) -> list[str]:
        """Watch the containers an earlier supervisor left running (their exits, restarts,
        health); mark the ones whose process is gone as exited. Returns the adopted names."""
        await self.observe(None, project)
        adopted = []
        for record in list(self._records.values()):
            if (
                record.project == project
                and record.status == "running"
                and record.name not in self._watch_done
            ):
                self._started_at.setdefault(record.name, self.clock.now())
                self._spawn_watcher(record)
                adopted.append(record.name)
                self._publish("container", "adopt", record.name, record.service)
        return adopted

    # --- converge ----------------------------------------------------------------------------

    async def up(self, spec: ProjectSpec, options: UpOptions | None = None) -> ExecutionReport:
        """Converge ``spec``: plan and execute until the plan is empty (or stops changing)."""
        options = options or UpOptions()
        self._renew_anon_volumes = options.renew_anon_volumes
        try:
            return await self._up(spec, options)
        finally:
            self._renew_anon_volumes = False

    async def _up(self, spec: ProjectSpec, options: UpOptions) -> ExecutionReport:
        report = ExecutionReport()
        validate_orc_extensions(spec)
        self._remember_project(spec)
        previous: str | None = None
        started_this_run: set[str] = set()
        for _ in range(MAX_PASSES):
            observed = await self.observe(spec, spec.name)
            plan = plan_up(spec.desired, observed, options)
            plan = _without_restarts_of(plan, started_this_run)
            report.warnings.extend(w for w in plan.warnings if w not in report.warnings)
            if plan.empty:
                break
            text = plan.to_text()
            if text == previous:
                report.warnings.append("the last pass changed nothing; stopping with the plan unfinished")
                break
            previous = text
            pass_report = await self.execute(plan, spec)
            report.merge(pass_report)
            started_this_run.update(
                a.target for a in plan.actions if a.kind in ("start", "restart", "recreate")
            )
            if not pass_report.ok:
                break
            # Later passes only fix what is still off: no second forced recreate.
            options = replace(options, force_recreate=False, always_recreate_deps=False)
        return report

    async def down(
        self, project: str, spec: ProjectSpec | None = None, options: DownOptions | None = None
    ) -> ExecutionReport:
        options = options or DownOptions()
        observed = await self.observe(spec, project)
        plan = plan_down(project, observed, spec.desired if spec else None, options)
        if spec is not None:
            self._remember_project(spec)
        report = await self.execute(plan, spec)
        report.warnings.extend(plan.warnings)
        if report.ok and not options.services:
            remaining = self.store.list_containers(project)
            record = self.store.load_project(project)
            if not remaining and (record is None or not record.networks):
                self.store.delete_project(project)
        return report

    async def stop_services(
        self,
        project: str,
        spec: ProjectSpec | None,
        services: Sequence[str] = (),
        timeout: float | None = None,
    ) -> ExecutionReport:
        """Stop the running containers of ``services`` (all when empty), dependents first."""
        observed = await self.observe(spec, project)
        stops = plan_stop(project, observed, spec.desired if spec else None, services)
        self._timeout_override = timeout
        try:
            return await self.execute(stops, spec)
        finally:
            self._timeout_override = None

    async def start_services(self, spec: ProjectSpec, services: Sequence[str] = ()) -> ExecutionReport:
        """Start existing, stopped containers of ``services`` in dependency order (no create)."""
        self._remember_project(spec)
        observed = await self.observe(spec, spec.name)
        return await self.execute(plan_start(spec.desired, observed, services), spec)

    async def run_one_off(
        self,
        spec: ProjectSpec,
        service_name: str,
        suffix: str,
        *,
        command: Sequence[str] | None = None,
        environment: Mapping[str, str] | None = None,
        with_dependencies: bool = True,
        detach: bool = False,
        stdio: tuple[int, int, int] | None = None,
        name: str | None = None,
        overrides: Mapping[str, object] | None = None,
        use_aliases: bool = False,
        pull: str | None = None,
        remove_orphans: bool = False,
    ) -> ContainerRecord:
        """``orc run``: a one-off container of ``service_name`` (its dependencies started first
        unless told otherwise), named ``<project>-<service>-run-<suffix>`` (or ``name``), with no
        restart policy and no published ports. ``overrides`` replaces fields of the service's
        model for this container only (``run -u -w -v -p --entrypoint --service-ports``). The
        one-off answers to its own name in DNS, and to the service's name and aliases only with
        ``use_aliases`` (``run --use-aliases``), as in Docker Compose. ``pull`` is the image's
        pull policy for this run (``run --pull``); ``remove_orphans`` removes the containers of
        services no longer in the files first (``run --remove-orphans``).
        Returns its record once it exited (or, with ``detach``, once it started)."""
        self._remember_project(spec)
        service = spec.desired.service(service_name)
        if service is None:
            raise UsageError(f"no such service: {service_name}")
        dependencies = tuple(d.service for d in service.depends_on if spec.desired.service(d.service))
        if with_dependencies and dependencies:
            report = await self.up(spec, UpOptions(services=dependencies))
            report.raise_for_failures()
            for dep in service.depends_on:
                verdict, why = await self._wait_gate(Gate(dep.service, dep.condition, dep.required))
                if verdict == FAIL and dep.required:
                    raise PermanentError(why)
        # What the one-off itself needs, as Docker Compose makes it for `run` (also with
        # --no-deps, and in a project never brought up): its image, networks and volumes.
        observed = await self.observe(spec, spec.name)
        needs = plan_up(
            spec.desired,
            observed,
            UpOptions(services=(service_name,), no_deps=True, pull=pull, remove_orphans=remove_orphans),
        )
        prerequisites = tuple(
            a
            for a in needs.actions
            if a.kind in RUN_PREREQUISITES or (a.kind == "remove" and a.cause == "orphan")
        )
        keys = {a.key for a in prerequisites}
        prerequisites = tuple(replace(a, after=tuple(k for k in a.after if k in keys)) for a in prerequisites)
        if prerequisites:
            (await self.execute(Plan(spec.name, prerequisites), spec)).raise_for_failures()
        behaviour = spec.behaviour(service_name)
        source = behaviour.source
        if isinstance(source, Service):
            source = dataclass_replace(
                source,
                command=tuple(command) if command else source.command,
                environment=FrozenDict({**source.environment, **(environment or {})}),
                **{"container_name": None, "ports": (), **(overrides or {})},  # type: ignore[arg-type]
            )
        name = name or f"{spec.name}-{service_name}-run-{suffix}"
        created = await self.runtime.create(
            ContainerRequest(
                project=spec.name,
                name=name,
                service=service_name,
                number=0,
                image=service.image,
                config=service.config,
                source=source,
                one_off=True,
                networks=service.networks,
            )
        )
        record = ContainerRecord(
            project=spec.name,
            name=name,
            service=service_name,
            number=0,
            container_id=created.container_id,
            config_hash=service.config_hash,
            image=service.image,
            image_digest=created.image_digest,
            one_off=True,
            use_aliases=use_aliases,
            created_at=self.wall(),
            rootfs=created.rootfs,
            log_path=created.log_path,
        )
        self._behaviours[name] = ServiceBehaviour(
            stop_signal=behaviour.stop_signal,
            stop_grace_period=behaviour.stop_grace_period,
            log_options=behaviour.log_options,
            source=source,
        )
        self._save(record)
        self.board.put(self._view(record))
        self._publish("container", "create", name, service_name)
        if stdio is not None:
            self.runtime.attach_next_start(name, stdio)
        await self._start(record, by_user=True)
        if not detach:
            watcher = self._watch_done.get(name)
            if watcher is not None:
                await watcher.wait()
        return self._records.get(name, record)

    def containers_of(
        self, project: str, services: Sequence[str] = (), one_off: bool = False
    ) -> list[ContainerRecord]:
        """The known containers of ``services`` (all when empty), by name."""
        return sorted(
            (
                r
                for r in self._records.values()
                if r.project == project
                and (not services or r.service in services)
                and (one_off or not r.one_off)
            ),
            key=lambda r: r.name,
        )

    async def kill_services(self, project: str, services: Sequence[str], signal: str) -> list[str]:
        """Send ``signal`` to the running containers of ``services``; their restart policy applies."""
        await self.observe(None, project)
        killed = []
        for record in self.containers_of(project, services):
            if record.status == "running":
                await self.runtime.kill(record, signal)
                self._publish("container", "kill", record.name, record.service, signal=signal)
                killed.append(record.name)
        return killed

    async def remove_services(
        self, project: str, services: Sequence[str], stop_first: bool
    ) -> ExecutionReport:
        """``rm``: remove the stopped containers of ``services`` (running ones too with ``stop_first``)."""
        observed = await self.observe(None, project)
        return await self.execute(plan_remove(project, observed, services, stop_first), None)

    async def pause_services(self, project: str, services: Sequence[str], pause: bool) -> list[str]:
        await self.observe(None, project)
        changed = []
        for record in self.containers_of(project, services):
            if pause and record.status == "running":
                await self.runtime.pause(record)
                record.status = "paused"
            elif not pause and record.status == "paused":
                await self.runtime.unpause(record)
                record.status = "running"
            else:
                continue
            self._save(record)
            self.board.update(record.name, status=record.status)
            self._publish("container", "pause" if pause else "unpause", record.name, record.service)
            changed.append(record.name)
        return changed

    async def wait_exit(self, name: str) -> ContainerRecord:
        """Wait until the container's watcher has seen its last exit (no restart follows)."""
        watcher = self._watch_done.get(name)
        if watcher is not None:
            await watcher.wait()
        return self._record(name)

    async def remove_container(self, name: str) -> None:
        record = self._record(name)
        await self._stop(record)
        await self._remove(record)
        report = ExecutionReport()
        await self._settle(report)
        report.raise_for_failures()

    async def exec_attached(self, name: str, request: ExecRequest) -> int:
        record = self._records.get(name)
        if record is None or record.status != "running":
            raise PermanentError(f"container {name} is not running")
        return await self.runtime.exec_attached(record, request)

    async def exec_in(self, name: str, argv: Sequence[str], timeout: float) -> ExecResult:
        record = self._records.get(name)
        if record is None or record.status != "running":
            raise PermanentError(f"container {name} is not running")
        return await self.runtime.exec(record, list(argv), timeout)

    # --- execute -----------------------------------------------------------------------------

    async def execute(self, plan: Plan, spec: ProjectSpec | None) -> ExecutionReport:
        """Run every action of ``plan`` once its prerequisites are done."""
        report = ExecutionReport()
        done = {action.key: anyio.Event() for action in plan.actions}
        begun = {action.key: anyio.Event() for action in plan.actions}  # past its waits and gates
        # A stop's process has ended (or the stop is over): the stops that wait for it (`down`
        # stops dependents first) begin then, not once its watcher has also recorded the exit.
        exited = {action.key: anyio.Event() for action in plan.actions if action.kind == "stop"}
        outcome: dict[str, bool] = {}
        # A container this plan creates and then starts has its start prepared (runtime.prepare:
        # the kernel work of a start, short of letting the process run) once it is created and
        # its dependencies' own starts are under way: one step ahead of the dependency chain, so
        # a start's kernel work overlaps its dependencies' instead of following it, without
        # taking the CPU from the starts that are due now.
        created_by = {
            a.key: key
            for a in plan.actions
            if a.kind == "start"
            for key in a.after
            if key in (f"create {a.target}", f"recreate {a.target}")
        }

        kinds = {a.key: a.kind for a in plan.actions}

        async def prepare_ahead(action: Action, created: str) -> None:
            await done[created].wait()
            if not outcome.get(created):
                return
            for key in action.after:
                if key == created:
                    continue
                # What the start needs made (its networks) must be there; its dependencies'
                # starts need only be under way.
                await (done if kinds[key] in _MADE_BEFORE_PREPARING else begun)[key].wait()
                if outcome.get(key) is False:
                    return  # it will not start: neither will this
            self.runtime.prepare(self._record(action.target))

        async def run(action: Action) -> None:
            try:
                created = created_by.get(action.key)
                if created is not None:
                    await prepare_ahead(action, created)
                for key in action.after:
                    await (exited[key] if action.kind == "stop" and key in exited else done[key]).wait()
                # A stop waited for may still be recording its exit: not failed so far is enough.
                failed_before = [k for k in action.after if not outcome.get(k, k in exited)]
                if failed_before:
                    report.skipped[action.key] = f"{failed_before[0]} did not succeed"
                    outcome[action.key] = False
                    return
                for gate in action.gates:
                    verdict, why = await self._wait_gate(gate)
                    if verdict == FAIL and gate.required:
                        report.failed[action.key] = why
                        outcome[action.key] = False
                        return
                    if verdict == FAIL:
                        report.warnings.append(f"{action.target}: optional {why}; starting anyway")
                begun[action.key].set()
                outcome[action.key] = await self._perform_with_retries(
                    action, spec, report, exited.get(action.key)
                )
            finally:
                begun[action.key].set()
                if action.key in exited:
                    exited[action.key].set()
                done[action.key].set()

        async with anyio.create_task_group() as group:
            for action in plan.actions:
                group.start_soon(run, action)
        # The removes' network teardowns (the kernel's, tens of ms) ran without holding a slot
        # of the bound; the plan is done once they are.
        await self._settle(report)
        report.done = [a.key for a in plan.actions if outcome.get(a.key) and a.key not in report.failed]
        return report

    async def _settle(self, report: ExecutionReport) -> None:
        """Wait for what the removes left to the runtime; a failed part fails its remove."""
        for name, why in (await self.runtime.settle()).items():
            report.failed[f"remove {name}"] = f"network teardown: {why}"

    async def _perform_with_retries(
        self,
        action: Action,
        spec: ProjectSpec | None,
        report: ExecutionReport,
        exited: anyio.Event | None = None,
    ) -> bool:
        backoff = 0.1
        # A stop signals and waits: it takes no slot of the bound on parallel kernel work, which
        # the removes of `down`'s earlier wave may all hold while the next wave waits to stop.
        limiter: AbstractAsyncContextManager[Any] = (
            contextlib.nullcontext() if action.kind == "stop" else self._limiter
        )
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with limiter:
                    await self._perform(action, spec, exited)
                return True
            except TemporaryError as exc:
                if attempt == MAX_ATTEMPTS:
                    report.failed[action.key] = f"{exc} (gave up after {MAX_ATTEMPTS} attempts)"
                    return False
                self._publish("project", "retry", action.target, action.service, error=str(exc))
                await self.clock.sleep(max(exc.retry_after, backoff))
                backoff = min(backoff * 2, 10.0)
            except OrcError as exc:
                report.failed[action.key] = str(exc)
                return False
            except Exception as exc:  # a driver bug must not take the other branches down
                report.failed[action.key] = f"internal error: {type(exc).__name__}: {exc}"
                return False
        return False  # pragma: no cover - the loop always returns

    async def _wait_gate(self, gate: Gate) -> tuple[str, str]:
        while True:
            verdict, why = gate_verdict(gate, self.board.of_service(gate.service))
            if verdict in (OK, FAIL):
                return verdict, why
            await self.board.wait_change()

    async def _perform(
        self, action: Action, spec: ProjectSpec | None, exited: anyio.Event | None = None
    ) -> None:
        """Carry out ``action``; a stop sets ``exited`` once its process has ended."""
        kind, target = action.kind, action.target
        project = spec.name if spec else self._project_of(target)
        if kind == "pull":
            digest = await self.runtime.pull(target)
            self._publish("image", "pull", target, digest=digest)
        elif kind == "create-network":
            info = await self.runtime.create_network(project, target)
            self._update_project(
                project,
                lambda r: r.networks.append(
                    NetworkRecord(info.name, info.driver_name, info.subnet, info.gateway)
                ),
            )
            self._publish("network", "create", target)
        elif kind == "remove-network":
            await self.runtime.remove_network(project, target)
            self._update_project(
                project,
                lambda r: r.networks.__setitem__(slice(None), [n for n in r.networks if n.name != target]),
            )
            self._publish("network", "destroy", target)
        elif kind == "create-volume":
            await self.runtime.create_volume(project, target)
            self._update_project(project, lambda r: r.volumes.append(target))
            self._publish("volume", "create", target)
        elif kind == "remove-volume":
            await self.runtime.remove_volume(project, target)
            self._update_project(project, lambda r: r.volumes.remove(target) if target in r.volumes else None)
            self._publish("volume", "destroy", target)
        elif kind == "create":
            assert spec is not None and action.service is not None and action.number is not None
            await self._create(spec, action.service, target, action.number)
        elif kind == "recreate":
            assert spec is not None and action.service is not None and action.number is not None
            old = self._record(target)
            await self._stop(old)
            # Its anonymous volumes go to its successor, as Docker Compose carries them over.
            await self._remove(old, keep_anonymous_volumes=not self._renew_anon_volumes)
            await self._create(spec, action.service, target, action.number)
        elif kind == "start":
            await self._start(self._record(target), by_user=True)
        elif kind == "restart":
            record = self._record(target)
            await self._stop(record)
            await self._start(record, by_user=True)
        elif kind == "stop":
            await self._stop(self._record(target), exited)
        elif kind == "remove":
            record = self._record(target)
            await self._stop(record)
            await self._remove(record)
        else:  # pragma: no cover - Action validates kinds
            raise PermanentError(f"unknown action {kind}")

    # --- container transitions ---------------------------------------------------------------

    async def _create(self, spec: ProjectSpec, service_name: str, name: str, number: int) -> None:
        service = spec.desired.service(service_name)
        assert service is not None
        behaviour = spec.behaviour(service_name)
        request = ContainerRequest(
            project=spec.name,
            name=name,
            service=service_name,
            number=number,
            image=service.image,
            config=service.config,
            source=behaviour.source,
            networks=service.networks,
        )
        created = await self.runtime.create(request)
        record = ContainerRecord(
            project=spec.name,
            name=name,
            service=service_name,
            number=number,
            container_id=created.container_id,
            config_hash=service.config_hash,
            image=service.image,
            image_digest=created.image_digest,
            status="created",
            created_at=self.wall(),
            rootfs=created.rootfs,
            log_path=created.log_path,
            cgroup_dirs=list(created.cgroup_dirs),
            config=_jsonable(service),
        )
        if behaviour.healthcheck is None and not behaviour.healthcheck_disabled and created.healthcheck:
            # The image's HEALTHCHECK, with the service's own timings over the image's.
            image_check = HealthCheck.from_compose({**created.healthcheck, **behaviour.healthcheck_timings})
            behaviour = replace(behaviour, healthcheck=image_check)
        behaviour = with_orc_health(behaviour)
        self._behaviours[name] = behaviour
        self._trackers[name] = RestartTracker(behaviour.restart)
        self._save(record)
        self.board.put(self._view(record))
        self._publish("container", "create", name, service_name)

    async def _start(self, record: ContainerRecord, by_user: bool) -> None:
        if record.status in RUNNING_STATES and record.name in self._watch_done:
            return
        behaviour = self._behaviour_of(record)
        tracker = self._trackers.setdefault(record.name, RestartTracker(behaviour.restart))
        if by_user:
            tracker.reset()
        self._stopping.discard(record.name)
        await self._start_process(record, behaviour)
        self._spawn_watcher(record)

    async def _start_process(self, record: ContainerRecord, behaviour: ServiceBehaviour) -> None:
        started = await self.runtime.start(record)
        record.status = "running"
        record.pid = started.pid
        record.pid_start_time = started.pid_start_time
        record.started_at = self.wall()
        record.exit_code = None
        record.oom_killed = False
        record.networks = list(started.networks) or record.networks
        record.ports = list(started.ports)
        record.health = STARTING if behaviour.healthcheck else None
        self._started_at[record.name] = self.clock.now()
        self._save(record)
        self.board.put(self._view(record, started=True))
        self._publish("container", "start", record.name, record.service)

    async def _stop(self, record: ContainerRecord, exited: anyio.Event | None = None) -> None:
        self._stopping.add(record.name)
        backoff = self._backoffs.get(record.name)
        if backoff is not None:
            backoff.cancel()
        if record.status not in RUNNING_STATES:
            return
        behaviour = self._behaviour_of(record)
        if record.status == "paused":
            await self.runtime.unpause(record)  # a frozen process cannot act on its stop signal
        self._publish("container", "kill", record.name, record.service, signal=behaviour.stop_signal)
        grace = self._timeout_override if self._timeout_override is not None else behaviour.stop_grace_period
        await self.runtime.stop(record, behaviour.stop_signal, grace)
        if exited is not None:
            exited.set()  # its exit is in; what the watcher records of it may follow
        watcher = self._watch_done.get(record.name)
        if watcher is not None:
            # The stop ends the process, and its watcher then ends. Should the watcher still be
            # on a process a while later (one started after the stop, a signal lost), stop again
            # rather than wait for ever: a `stop` or `down` must finish.
            while not await self._set_within(watcher, grace + STOP_RECHECK):
                self._publish("container", "kill", record.name, record.service, signal=behaviour.stop_signal)
                await self.runtime.stop(record, behaviour.stop_signal, grace)
        else:
            record.status = "exited"
            record.pid = None
            record.finished_at = self.wall()
            self._save(record)
            self.board.update(record.name, status="exited")
        self._publish("container", "stop", record.name, record.service)

    async def _set_within(self, event: anyio.Event, seconds: float) -> bool:
        """Wait for ``event`` at most ``seconds`` on the reconciler's clock; whether it is set."""
        async with anyio.create_task_group() as group:

            async def give_up() -> None:
                await self.clock.sleep(seconds)
                group.cancel_scope.cancel()

            group.start_soon(give_up)
            await event.wait()
            group.cancel_scope.cancel()
        return event.is_set()

    async def _remove(self, record: ContainerRecord, keep_anonymous_volumes: bool = False) -> None:
        scope = self._watch_scopes.get(record.name)
        if scope is not None:
            scope.cancel()
        await self.runtime.remove(record, keep_anonymous_volumes=keep_anonymous_volumes)
        self.store.delete_container(record.project, record.name)
        self._records.pop(record.name, None)
        self._trackers.pop(record.name, None)
        self.board.remove(record.name)
        self._publish("container", "destroy", record.name, record.service)

    # --- supervision -------------------------------------------------------------------------

    def _spawn_watcher(self, record: ContainerRecord) -> None:
        if self._group is None:
            raise PermanentError("the reconciler is not in a session: nobody would watch the container")
        done = anyio.Event()
        self._watch_done[record.name] = done
        self._group.start_soon(self._watch, record.name, done)

    async def _watch(self, name: str, done: anyio.Event) -> None:
        """Wait for exits, run health checks, apply the restart policy; ends when not restarted."""
        try:
            with anyio.CancelScope() as scope:
                self._watch_scopes[name] = scope
                while True:
                    record = self._records.get(name)
                    if record is None:
                        return
                    behaviour = self._behaviour_of(record)
                    async with anyio.create_task_group() as group:
                        if behaviour.healthcheck is not None:
                            group.start_soon(self._health_loop, record, behaviour)
                        status = await self.runtime.wait(record)
                        group.cancel_scope.cancel()
                    record.status = "exited"
                    record.exit_code = status.exit_code
                    record.oom_killed = status.oom_killed
                    record.finished_at = self.wall()
                    record.pid = None
                    record.health = None
                    self._save(record)
                    self.board.update(name, status="exited", exit_code=status.exit_code, health=None)
                    self._publish(
                        "container",
                        "die",
                        name,
                        record.service,
                        exitCode=str(status.exit_code),
                        oomKilled=str(status.oom_killed).lower(),
                    )
                    # Read again: the project's files may have been (re)loaded while it ran.
                    behaviour = self._behaviour_of(record)
                    tracker = self._trackers.get(name)
                    if tracker is None or tracker.policy != behaviour.restart:
                        previous = tracker
                        tracker = RestartTracker(behaviour.restart)
                        if previous is not None:
                            tracker.restart_count = previous.restart_count
                            tracker.backoff = previous.backoff
                            tracker.cancelled = previous.cancelled
                        self._trackers[name] = tracker
                    started_at = self._started_at.get(name, self.clock.now())
                    if name in self._unhealthy_stops and name not in self._stopping:
                        self._unhealthy_stops.discard(name)
                        decision = unhealthy_restart_decision(
                            tracker, started_at=started_at, exited_at=self.clock.now()
                        )
                    else:
                        self._unhealthy_stops.discard(name)
                        decision = tracker.on_exit(
                            status.exit_code,
                            started_at=started_at,
                            exited_at=self.clock.now(),
                            stopped_by_user=name in self._stopping,
                        )
                    if not decision.restart:
                        return
                    record.status = "restarting"
                    self._save(record)
                    self.board.update(name, status="restarting")
                    with anyio.CancelScope() as backoff:
                        self._backoffs[name] = backoff
                        await self.clock.sleep(decision.delay)
                    self._backoffs.pop(name, None)
                    if name in self._stopping or name not in self._records:
                        record.status = "exited"
                        self._save(record)
                        self.board.update(name, status="exited")
                        return
                    try:
                        await self._start_process(record, behaviour)
                    except OrcError as exc:
                        record.status = "exited"
                        self._save(record)
                        self.board.update(name, status="exited")
                        self._publish("container", "restart-failed", name, record.service, error=str(exc))
                        return
                    record.restart_count += 1
                    self._save(record)
                    self._publish("container", "restart", name, record.service, reason=decision.reason)
                    if name in self._stopping:
                        # A stop arrived while this restart was starting the process; it
                        # waits for this watcher, which must stop what it just started.
                        grace = (
                            self._timeout_override
                            if self._timeout_override is not None
                            else behaviour.stop_grace_period
                        )
                        await self.runtime.stop(record, behaviour.stop_signal, grace)
        finally:
            self._watch_scopes.pop(name, None)
            self._watch_done.pop(name, None)
            done.set()

    async def _health_loop(self, record: ContainerRecord, behaviour: ServiceBehaviour) -> None:
        assert behaviour.healthcheck is not None
        last = record.health
        extension = extension_of(behaviour)

        async def exec_probe(argv: Sequence[str], timeout: float) -> ExecResult:
            return await self.runtime.exec(record, list(argv), timeout)

        def report(status: str, result: ExecResult) -> None:
            nonlocal last
            if status != last:
                last = status
                record.health = status
                self._save(record)
                self.board.update(record.name, health=status)
                detail = {"output": result.output[:200]} if extension.replaces_healthcheck else {}
                self._publish("container", f"health_status: {status}", record.name, record.service, **detail)
                if status == UNHEALTHY and extension.restart_on_unhealthy:
                    self._restart_unhealthy(record, behaviour)

        if extension.ready_log is not None:
            since = record.started_at or self.wall()
            reader = self.probes.output_reader(record.log_path or "", since)
            await monitor_ready_log(extension.ready_log, reader, self.clock, report)
            return
        probe: Probe = exec_probe
        if extension.probe is not None:
            probe = probe_function(self.probes, lambda: record.pid, extension.probe)
        await monitor_health(behaviour.healthcheck, probe, self.clock, report)

    def _restart_unhealthy(self, record: ContainerRecord, behaviour: ServiceBehaviour) -> None:
        """Stop the container (stop signal, grace period); its watcher then restarts it."""
        if self._group is None or record.name in self._stopping or record.name in self._unhealthy_stops:
            return
        self._unhealthy_stops.add(record.name)
        self._publish(
            "container", "kill", record.name, record.service, signal=behaviour.stop_signal, reason="unhealthy"
        )

        async def stop() -> None:
            try:
                await self.runtime.stop(record, behaviour.stop_signal, behaviour.stop_grace_period)
            except OrcError as exc:
                self._unhealthy_stops.discard(record.name)
                self._publish("container", "restart-failed", record.name, record.service, error=str(exc))

        self._group.start_soon(stop)

    # --- helpers -----------------------------------------------------------------------------

    def _remember_project(self, spec: ProjectSpec) -> None:
        self._spec_behaviours = {
            s.name: with_orc_health(spec.behaviour(s.name)) for s in spec.desired.services
        }
        for service in spec.desired.services:
            self.runtime.describe(
                spec.name, service.name, spec.behaviour(service.name).source, service.networks
            )
        self.runtime.describe_networks(spec.name, spec.networks)
        for name, container in self._records.items():
            if container.project == spec.name and container.service in self._spec_behaviours:
                self._behaviours[name] = self._spec_behaviours[container.service]
        record = self.store.load_project(spec.name)
        if record is None:
            record = ProjectRecord(name=spec.name, created_at=self.wall())
        record.working_dir = spec.working_dir
        record.config_files = list(spec.config_files)
        record.updated_at = self.wall()
        self.store.save_project(record)

    def _behaviour_of(self, record: ContainerRecord) -> ServiceBehaviour:
        behaviour = self._behaviours.get(record.name)
        if behaviour is None:
            behaviour = self._spec_behaviours.get(record.service) or ServiceBehaviour()
            self._behaviours[record.name] = behaviour
        return behaviour

    def _record(self, name: str) -> ContainerRecord:
        record = self._records.get(name)
        if record is None:
            raise PermanentError(f"container {name} is not known to this project")
        return record

    def _project_of(self, name: str) -> str:
        record = self._records.get(name)
        if record is not None:
            return record.project
        raise PermanentError(f"cannot tell which project {name} belongs to")

    def _update_project(self, project: str, change: Callable[[ProjectRecord], object]) -> None:
        record = self.store.load_project(project) or ProjectRecord(name=project, created_at=self.wall())
        change(record)
        record.updated_at = self.wall()
        self.store.save_project(record)

    def _save(self, record: ContainerRecord) -> None:
        self._records[record.name] = record
        self.store.save_container(record)

    def _view(self, record: ContainerRecord, started: bool = False) -> ContainerView:
        behaviour = self._behaviour_of(record)
        previous = self.board.get(record.name)
        return ContainerView(
            name=record.name,
            service=record.service,
            number=record.number,
            status=record.status,
            health=record.health,
            has_healthcheck=behaviour.healthcheck is not None,
            exit_code=record.exit_code,
            started=started or (previous.started if previous else record.started_at is not None),
            one_off=record.one_off,
        )

    def _publish(
        self, type_: str, action: str, name: str, service: str | None = None, **attributes: str
    ) -> None:
        self.bus.publish(Event(self.wall(), type_, action, name, service, attributes))


def _observed(record: ContainerRecord) -> ObservedContainer:
    return ObservedContainer(
        name=record.name,
        service=record.service,
        number=record.number,
        config_hash=record.config_hash,
        status=record.status,
        config=record.config,
        image=record.image,
        image_digest=record.image_digest,
        exit_code=record.exit_code,
        one_off=record.one_off,
        health=record.health,
    )


def _jsonable(service: DesiredService) -> dict[str, object]:
    import json

    return dict(json.loads(json.dumps(dict(service.config), default=str)))


def _without_restarts_of(plan: Plan, started: set[str]) -> Plan:
    """Drop the start of containers this ``up`` already started and that have exited since (a
    one-shot job that finished must not run again within the same ``up``)."""
    if not started:
        return plan
    dropped = {a.key for a in plan.actions if a.kind == "start" and a.target in started and not a.after}
    if not dropped:
        return plan
    actions = tuple(
        replace(a, after=tuple(k for k in a.after if k not in dropped))
        for a in plan.actions
        if a.key not in dropped
    )
    return replace(plan, actions=actions)
