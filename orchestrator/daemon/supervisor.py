"""The per-project supervisor: owns the containers of one project while they run.

Owned here: :class:`Supervisor` (the control socket server, the reconciler session and the
kernel runtime for one project) and :func:`main`, the entry point ``orc up -d`` detaches into
(``python -m orchestrator.daemon.supervisor``). The supervisor loads the Compose files itself from
the load options the CLI sends (files, directory, profiles, environment), so it never trusts a
half-understood serialisation of the project. It records its pid and start time in the project's
state so a later CLI can find it, and exits after ``down`` (or SIGTERM, leaving containers running
for the next supervisor to adopt).

Requests (``daemon.protocol``): ``ping``, ``up``, ``down``, ``stop``, ``start``, ``restart``,
``exec``, ``events``. ``up`` takes a test hook, ``options.test_kill_after_actions`` (set by the
CLI from ``ORC_TEST_KILL_AFTER_ACTIONS``): the supervisor SIGKILLs itself after that many actions.
``up`` options may carry ``image_options`` (registry settings and archive base directory, from the
CLI's environment: :class:`~orchestrator.reconciler.ports.ImageOptions`) and ``locked_images``
(``up --locked``: service → the ``compose.lock`` pin the CLI checked, run instead of the tag).
``run`` may carry ``name`` (``--name``) and ``service_changes`` (the service's keys that ``run -u
-w -v -p --entrypoint --service-ports`` change, bound for the one-off only: :func:`one_off_overrides`).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream

from orchestrator import codecache
from orchestrator.daemon import protocol
from orchestrator.daemon.protocol import socket_path
from orchestrator.errors import OrcError, UsageError
from orchestrator.planner.plan import DownOptions, UpOptions
from orchestrator.reconciler.events import Event, EventBus
from orchestrator.reconciler.ports import ExecRequest, ImageOptions
from orchestrator.reconciler.project import ProjectSpec
from orchestrator.reconciler.reconciler import ExecutionReport, Reconciler
from orchestrator.runtime import fdio
from orchestrator.runtime.writeback import write_back_in_background
from orchestrator.state.proc import pid_start_time
from orchestrator.state.records import ProjectRecord
from orchestrator.state.store import FileStateStore


def load_spec(load: dict[str, Any]) -> ProjectSpec:
    """Load the project the CLI described (same options, same environment) and translate it."""
    from orchestrator.hostfs import HostFileSource
    from orchestrator.reconciler.desired import from_loaded
    from orchestrator.stack.loader import LoadOptions
    from orchestrator.stack.loader import load as load_project

    options = LoadOptions(
        cwd=load["cwd"],
        environ=dict(load.get("environ") or {}),
        files=tuple(load.get("files") or ()),
        project_name=load.get("project_name"),
        project_directory=load.get("project_directory"),
        profiles=tuple(load.get("profiles") or ()),
        env_files=tuple(load.get("env_files") or ()),
        home=load.get("home"),
    )
    return from_loaded(load_project(options, HostFileSource()))


# The service keys ``run`` may change for its container (``service_changes``), all named as
# the model's fields.
ONE_OFF_KEYS = frozenset(
    {"user", "working_dir", "entrypoint", "volumes", "ports", "cap_add", "cap_drop", "labels"}
)


def one_off_overrides(request: dict[str, Any], service: str) -> dict[str, object]:
    """The model fields of ``service`` that ``run`` changes for its one-off container.

    ``request["service_changes"]`` holds the service's keys as canonical Compose (what the CLI
    built from ``-u -w -v -p --entrypoint --service-ports``); they are bound with the rest of the
    project's document, like the file's own, and only the changed fields are taken, so the
    project this supervisor remembers keeps the service as written.
    """
    changes = request.get("service_changes") or {}
    if not changes:
        return {}
    unknown = set(changes) - ONE_OFF_KEYS
    if unknown:
        raise UsageError(f"run cannot change {', '.join(sorted(unknown))} of a service")
    project = request.get("project")
    if not project:
        raise UsageError("run with service changes needs the project's document")
    import copy

    from orchestrator.reconciler.desired import from_document

    document = copy.deepcopy(project["document"])
    services = document.get("services") or {}
    if service not in services:
        raise UsageError(f"no such service: {service}")
    services[service].update(copy.deepcopy(changes))
    source = from_document({**project, "document": document}).behaviour(service).source
    return {key: getattr(source, key) for key in changes}


def report_json(report: ExecutionReport) -> dict[str, Any]:
    return {
        "done": report.done,
        "failed": report.failed,
        "skipped": report.skipped,
        "warnings": report.warnings,
    }


class Supervisor:
    def __init__(
        self,
        project: str,
        run_root: Path,
        lib_root: Path,
        runtime_factory: Callable[[], Any],
        clock_wall: Callable[[], float] = time.time,
        crash: Callable[[], None] | None = None,
    ) -> None:
        self.project = project
        self.run_root = run_root
        self.lib_root = lib_root
        self.store = FileStateStore(run_root)
        self.bus = EventBus()
        self._runtime_factory = runtime_factory
        self._wall = clock_wall
        self._crash = crash or _sigkill_self
        self._spec: ProjectSpec | None = None
        # The project document last bound, with its spec: binding is a pure function of the
        # document, and a repeated `up` (nothing changed) sends the same one again.
        self._bound: tuple[dict[str, Any], ProjectSpec] | None = None
        self._done = anyio.Event()
        self._socket_inode = -1
        # One change at a time: two `up`s (or `up` and `down`) must not plan against each other.
        self._changing = anyio.Lock()
        self.reconciler: Reconciler | None = None

    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        path = socket_path(self.run_root, self.project)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        async with self._runtime_factory() as runtime:
            self.reconciler = Reconciler(runtime, self.store, bus=self.bus, wall=self._wall)
            try:
                async with self.reconciler.session(), fdio.unix_listener(path) as listener:
                    os.chmod(path, 0o600)
                    self._socket_inode = path.stat().st_ino
                    self._record_self(path)
                    await self._adopt()
                    if ready is not None:
                        ready()
                    async with anyio.create_task_group() as group:
                        group.start_soon(listener.serve, self._handle)
                        group.start_soon(self._signals, group.cancel_scope)
                        await self._done.wait()
                        group.cancel_scope.cancel()
            except BaseException:
                # Failing (e.g. its fork server was killed): nothing listens any more, and the
                # runtime's shutdown below can take seconds. Without the socket a command
                # arriving meanwhile starts the next supervisor instead of being refused.
                self._release_socket()
                raise
        self._release_socket()
        record = self.store.load_project(self.project)
        if record is not None and record.supervisor_pid == os.getpid():
            record.supervisor_pid = None
            record.socket_path = None
            self.store.save_project(record)

    def _release_socket(self) -> None:
        """Remove our socket, unless a newer supervisor already put its own in its place."""
        path = socket_path(self.run_root, self.project)
        try:
            if path.stat().st_ino == self._socket_inode:
                path.unlink()
        except FileNotFoundError:
            pass

    async def _signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                self._done.set()
                return

    def _record_self(self, path: Path) -> None:
        record = self.store.load_project(self.project) or ProjectRecord(
            name=self.project, created_at=self._wall()
        )
        record.supervisor_pid = os.getpid()
        record.supervisor_start_time = pid_start_time(os.getpid())
        record.socket_path = str(path)
        self.store.save_project(record)

    async def _adopt(self) -> None:
        """Containers recorded as running by a previous supervisor: watch the live ones again."""
        assert self.reconciler is not None
        if self.store.list_containers(self.project):
            await self.reconciler.adopt(self.project)

    async def _handle(self, stream: fdio.SocketStream) -> None:
        fds: list[int] = []
        async with stream:
            buffered = BufferedByteReceiveStream(stream)
            try:
                # The first message may carry the client's stdio (SCM_RIGHTS), for `exec`.
                first, fds = await stream.receive_fds(65536, 3)
                if not first:
                    return
                buffered.feed_data(first)
                line = await buffered.receive_until(b"\n", protocol.MAX_LINE)
                request = protocol.decode(line)
                request["_fds"] = fds
                await self._dispatch(request, stream)
            except _HUNG_UP:
                return
            except Exception as exc:
                error = _first_error(exc)
                if isinstance(error, _HUNG_UP):
                    return  # the client went away: nobody to tell
                if isinstance(error, OrcError):
                    reply = protocol.error(str(error), error.exit_code)
                else:
                    reply = protocol.error(f"supervisor: internal error: {type(error).__name__}: {error}")
                with contextlib.suppress(*_HUNG_UP):
                    await _send(stream, reply)
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    async def _dispatch(self, request: dict[str, Any], stream: anyio.abc.ByteStream) -> None:
        assert self.reconciler is not None
        with self.reconciler.parallelism(request.get("parallel")):
            await self._dispatch_request(request, stream)

    async def _dispatch_request(self, request: dict[str, Any], stream: anyio.abc.ByteStream) -> None:
        assert self.reconciler is not None
        op = request.get("op")
        if op == "ping":
            await _send(stream, protocol.ok({"pid": os.getpid(), "project": self.project}))
            return
        if op == "exit":
            # Started for a project that turned out to be another (the CLI guessed its name).
            if self.store.list_containers(self.project):
                raise UsageError(f"project {self.project} has containers: use down")
            self._release_socket()
            record = self.store.load_project(self.project)
            if record is None or not record.networks:
                self.store.delete_project(self.project)
            await _send(stream, protocol.ok({}))
            self._done.set()
            return
        if op == "events":
            async with self.bus.subscribe() as events:
                async for item in events:
                    await _send(stream, protocol.event(item.to_json()))
            return
        if op == "exec" and request.get("attach"):
            fds = request["_fds"]
            if len(fds) != 3:
                raise UsageError("exec --attach needs the caller's stdin, stdout and stderr")
            code = await self.reconciler.exec_attached(
                request["container"],
                ExecRequest(
                    tuple(request["argv"]),
                    (fds[0], fds[1], fds[2]),
                    env=dict(request.get("env") or {}),
                    user=request.get("user"),
                    workdir=request.get("workdir"),
                    privileged=bool(request.get("privileged")),
                    tty=bool(request.get("tty")),
                ),
            )
            await _send(stream, protocol.ok({"exit_code": code}))
            return
        if op == "exec":
            result = await self.reconciler.exec_in(
                request["container"], request["argv"], float(request.get("timeout", 3600))
            )
            await _send(stream, protocol.ok({"exit_code": result.exit_code, "output": result.output}))
            return
        if op == "run":
            await _send(stream, protocol.ok(await self._run_one_off(request)))
            return
        if op == "stats":
            from orchestrator.reconciler.stats import stats_request

            await _send(stream, protocol.ok(await stats_request(self.reconciler, self.project, request)))
            return
        if op in ("kill", "pause", "unpause", "top", "port"):
            await _send(stream, protocol.ok(await self._container_op(op, request)))
            return
        spec = self._spec_from(request)
        kill_after = int((request.get("options") or {}).get("test_kill_after_actions") or 0)
        hook = anyio.CancelScope()
        async with self.bus.subscribe() as events, anyio.create_task_group() as group:

            async def forward() -> None:
                # A client that hangs up (Ctrl-C on `orc up`) stops the progress, not the work:
                # the request still runs to its end, as the files asked.
                async for item in events:
                    try:
                        await _send(
                            stream, b"".join(protocol.event(e.to_json()) for e in _with_queued(item, events))
                        )
                    except _HUNG_UP:
                        return

            async def die_hook(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                with hook:
                    await self._die_after_actions(kill_after, task_status=task_status)

            if op == "up" and kill_after > 0:
                await group.start(die_hook)
            group.start_soon(forward)
            async with self._changing:
                report = await self._run(op, request, spec)
            hook.cancel()
            # Every event of this request reaches the client before its answer: forward drains
            # the queue and ends, instead of being cancelled with events still queued.
            self.bus.end(events)
        finished = op == "down" and not request.get("services")
        if finished:
            # Stop answering before saying "done", so the next `up` starts a fresh supervisor.
            self._release_socket()
        with contextlib.suppress(*_HUNG_UP):
            await _send(stream, protocol.ok(report_json(report)))
        if finished:
            self._done.set()
        elif op == "up" and report.done:
            # What the up wrote is written back now, not by the first container exit after it.
            write_back_in_background((self.lib_root, self.run_root))

    async def _die_after_actions(
        self, count: int, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Test hook (``ORC_TEST_KILL_AFTER_ACTIONS``, passed by ``orc up``): SIGKILL this
        supervisor once ``count`` actions of the plan are done, as a crash in the middle of
        ``up`` would, to show that the next ``up`` converges from what is left."""
        async with self.bus.subscribe() as events:
            task_status.started()
            async for item in events:
                if item.action in _ACTION_EVENTS:
                    count -= 1
                    if count <= 0:
                        self._crash()
                        return

    async def _container_op(self, op: str, request: dict[str, Any]) -> dict[str, Any]:
        assert self.reconciler is not None
        services = tuple(request.get("services") or ())
        if op == "kill":
            async with self._changing:
                killed = await self.reconciler.kill_services(
                    self.project, services, request.get("signal") or "SIGKILL"
                )
            return {"containers": killed}
        if op in ("pause", "unpause"):
            async with self._changing:
                changed = await self.reconciler.pause_services(self.project, services, op == "pause")
            return {"containers": changed}
        await self.reconciler.observe(None, self.project)
        if op == "top":
            running = [
                r
                for r in self.reconciler.containers_of(self.project, services)
                if r.status in ("running", "paused")
            ]
            return {"containers": {r.name: await self.reconciler.runtime.top(r) for r in running}}
        # port
        matches = [
            r
            for r in self.reconciler.containers_of(self.project, (str(request["service"]),))
            if r.number == int(request.get("index", 1))
        ]
        if not matches:
            raise UsageError(
                f"service {request['service']} has no container number {request.get('index', 1)}"
            )
        target, protocol_name = int(request["target"]), str(request.get("protocol") or "tcp")
        return {"addresses": self.reconciler.runtime.port(matches[0], target, protocol_name)}

    async def _run_one_off(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.reconciler is not None
        fds = request.get("_fds") or []
        spec = self._spec_from(request)
        if request.get("image_options") is not None:
            await self.reconciler.runtime.configure_images(ImageOptions.from_json(request["image_options"]))
        if spec is None:
            raise UsageError("run needs the project's files")
        suffix = request.get("name_suffix") or os.urandom(6).hex()
        if request.get("tty") and len(fds) == 3:
            self.reconciler.runtime.use_terminal(
                request.get("name") or f"{spec.name}-{request['service']}-run-{suffix}"
            )
        async with self._changing:
            record = await self.reconciler.run_one_off(
                spec,
                str(request["service"]),
                suffix,
                command=request.get("command"),
                environment=request.get("environment") or {},
                with_dependencies=not request.get("no_deps"),
                detach=True,
                stdio=(fds[0], fds[1], fds[2]) if len(fds) == 3 else None,
                name=request.get("name") or None,
                overrides=one_off_overrides(request, str(request["service"])),
                use_aliases=bool(request.get("use_aliases")),
                pull=request.get("pull") or None,
                remove_orphans=bool(request.get("remove_orphans")),
            )
        if not request.get("detach"):
            record = await self.reconciler.wait_exit(record.name)
        output = ""
        if not request.get("detach") and record.log_path and len(fds) != 3:
            from orchestrator.state.logs import container_entries

            output = "".join(e.text for e in container_entries(Path(record.log_path)))
        if request.get("rm") and not request.get("detach"):
            async with self._changing:
                await self.reconciler.remove_container(record.name)
        return {"container": record.name, "exit_code": record.exit_code, "output": output}

    def _spec_from(self, request: dict[str, Any]) -> ProjectSpec | None:
        spec: ProjectSpec | None = None
        if request.get("project"):
            document = request["project"]
            if self._bound is not None and self._bound[0] == document:
                spec = self._bound[1]
            else:
                from orchestrator.reconciler.desired import from_document

                spec = from_document(document)
                self._bound = (document, spec)
        elif request.get("load"):
            spec = load_spec(request["load"])
        if spec is not None:
            if spec.name != self.project:
                raise UsageError(f"this supervisor runs project {self.project}, not {spec.name}")
            self._spec = spec
        return self._spec

    async def _run(
        self, op: str | None, request: dict[str, Any], spec: ProjectSpec | None
    ) -> ExecutionReport:
        assert self.reconciler is not None
        services = tuple(request.get("services") or ())
        timeout = request.get("timeout")
        if op == "up":
            if spec is None:
                raise UsageError("up needs the project's files")
            options = request.get("options") or {}
            if options.get("image_options") is not None:
                await self.reconciler.runtime.configure_images(
                    ImageOptions.from_json(options["image_options"])
                )
            if options.get("locked_images") is not None:
                from orchestrator.reconciler.desired import pin_images

                spec = pin_images(spec, {str(k): str(v) for k, v in options["locked_images"].items()})
            return await self.reconciler.up(
                spec,
                UpOptions(
                    services=services,
                    no_deps=bool(options.get("no_deps")),
                    force_recreate=bool(options.get("force_recreate")),
                    no_recreate=bool(options.get("no_recreate")),
                    always_recreate_deps=bool(options.get("always_recreate_deps")),
                    remove_orphans=bool(options.get("remove_orphans")),
                    no_start=bool(options.get("no_start")),
                    scale={k: int(v) for k, v in (options.get("scale") or {}).items()},
                    pull=options.get("pull"),
                    renew_anon_volumes=bool(options.get("renew_anon_volumes")),
                ),
            )
        if op == "down":
            options = request.get("options") or {}
            self.reconciler._timeout_override = float(timeout) if timeout is not None else None
            try:
                return await self.reconciler.down(
                    self.project,
                    spec,
                    DownOptions(
                        services=services,
                        volumes=bool(options.get("volumes")),
                        remove_orphans=bool(options.get("remove_orphans")),
                    ),
                )
            finally:
                self.reconciler._timeout_override = None
        if op == "stop":
            return await self.reconciler.stop_services(self.project, spec, services, timeout)
        if op == "rm":
            return await self.reconciler.remove_services(self.project, services, bool(request.get("stop")))
        if op in ("start", "restart"):
            if spec is None:
                raise UsageError(f"{op} needs the project's files")
            report = ExecutionReport()
            if op == "restart":
                report.merge(await self.reconciler.stop_services(self.project, spec, services, timeout))
            report.merge(await self.reconciler.start_services(spec, services))
            return report
        raise UsageError(f"unknown request {op!r}")


GIL_SWITCH_INTERVAL = 0.0005  # seconds; see main()

# What sending to (or reading from) a client that went away raises.
_HUNG_UP = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    BrokenPipeError,
    ConnectionResetError,
)

# The events that mark a finished plan action (what the test kill hook counts).
_ACTION_EVENTS = frozenset({"pull", "create", "start", "restart", "stop", "destroy"})


def _sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _first_error(exc: BaseException) -> BaseException:
    """The error inside (nested) exception groups from task groups, preferring an OrcError."""
    while isinstance(exc, BaseExceptionGroup):
        inner: list[BaseException] = [e for e in exc.exceptions if isinstance(e, OrcError)]
        exc = (inner or list(exc.exceptions))[0]
    return exc


async def _send(stream: anyio.abc.ByteStream, data: bytes) -> None:
    await stream.send(data)


def _with_queued(first: Event, events: MemoryObjectReceiveStream[Event]) -> list[Event]:
    """``first`` and the events queued behind it: a client gets them in one write (a `down` of
    30 containers publishes ~150 events; one write and one wake-up of the client each cost both
    processes more than the event itself)."""
    batch = [first]
    while True:
        try:
            batch.append(events.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            return batch


@dataclass(frozen=True)
class Arguments:
    project: str
    run_root: str
    lib_root: str
    cgroup_prefix: str = "orc"
    ready_fd: int = -1


def parse_arguments(argv: list[str]) -> Arguments:
    """The supervisor's command line (written by ``daemon.spawn``): ``--name value`` or
    ``--name=value`` for each field of :class:`Arguments`. Not argparse: it cost ~13 ms of the
    supervisor's start, which every ``up`` waits for."""
    values: dict[str, str] = {}
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        name, equals, value = word.partition("=")
        key = name[2:].replace("-", "_")
        if not name.startswith("--") or key not in Arguments.__dataclass_fields__:
            raise UsageError(f"unknown argument {word!r}")
        if not equals:
            if not rest:
                raise UsageError(f"{name} needs a value")
            value = rest.pop(0)
        values[key] = value
    missing = [f"--{k.replace('_', '-')}" for k in ("project", "run_root", "lib_root") if k not in values]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}")
    try:
        ready_fd = int(values.pop("ready_fd", "-1"))
    except ValueError as exc:
        raise UsageError(f"--ready-fd needs a number: {exc}") from exc
    return Arguments(**values, ready_fd=ready_fd)


def main(argv: list[str] | None = None) -> None:
    """``python -m orchestrator.daemon.supervisor --project P --run-root R --lib-root L``."""
    # Dozens of worker threads hand the GIL back and forth around short blocking calls (netlink,
    # fsync, the fork server's socket); with the default 5 ms interval a thread returning from
    # one waits for a CPU-bound peer's whole slice. 0.5 ms cut `up -d` of 30 services by 4-20 %
    # in A/B runs, depending on the machine's load (bench/results/up_down.md).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    try:
        args = parse_arguments(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"orc-supervisor: {exc}", file=sys.stderr)
        sys.exit(2)
    run_root, lib_root = Path(args.run_root), Path(args.lib_root)

    from orchestrator.reconciler.adapter import KernelRuntime

    codecache.save_and_release()  # all its classes are defined by now
    # The collector was off for the imports (``runtime.launch``): what they made lives as long as
    # the process, so later collections need not walk it again.
    gc.freeze()
    gc.enable()

    def ready() -> None:
        if args.ready_fd >= 0:
            os.write(args.ready_fd, b"ready\n")
            os.close(args.ready_fd)

    def factory() -> KernelRuntime:
        return KernelRuntime(args.project, run_root, lib_root, cgroup_prefix=args.cgroup_prefix)

    supervisor = Supervisor(args.project, run_root, lib_root, factory)
    try:
        anyio.run(supervisor.serve, ready)
    except OrcError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    # Everything is closed and recorded by now (the runtime, its fork server, the log files, the
    # project record). The interpreter's own teardown (idle worker threads, every module's
    # objects) is CPU the next command would compete with, for nothing.
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(0)


if __name__ == "__main__":
    main()
