"""The real :class:`~orchestrator.reconciler.ports.ContainerRuntime`: Compose services on the kernel.

Owned here: :class:`KernelRuntime`, which translates a model ``Service`` (plus its image config)
into the drivers' own specs and drives them: ``runtime.process`` (fork server: two-phase
create/start, exec, stop), ``runtime.cgroups`` (one cgroup per container below the supervisor's
own), ``runtime.network`` (bridges, veths, DNS registrations) and ``runtime.images`` (or an
``x-orc`` rootfs directory). Secrets, configs, named volumes, ``volumes_from`` and
``service:X`` namespaces come from :mod:`orchestrator.reconciler.stackrefs` and are mounted or
joined at start; ``usage`` feeds ``orc stats``; ``exec``/``run`` with a terminal shuttle bytes
between the caller's descriptors and the pseudo-terminal's master end. Container output goes through pipes into
:class:`~orchestrator.state.logs.LogWriter` (JSON lines, rotated); the supervisor process hosts
this object for as long as the project runs.

Blocking driver calls run in worker threads: the fork server was started before any thread, so
forking stays safe (see the process runtime's docstring).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import os
import shutil
import signal
import struct
import termios
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from orchestrator.errors import NotFoundError, OrcError, PermanentError, TemporaryError
from orchestrator.model import Network, Service
from orchestrator.reconciler import hostroot
from orchestrator.reconciler.desired import BUILD_PREFIX, ROOTFS_PREFIX
from orchestrator.reconciler.logpump import LogPump, PumpHandle
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
from orchestrator.reconciler.stackrefs import refs_of, write_file_mounts
from orchestrator.reconciler.stats import ContainerUsage
from orchestrator.reconciler.volumes import anonymous_key, copy_up, image_volume_targets
from orchestrator.reconciler.wakeups import LoopWakeups
from orchestrator.runtime import fdio
from orchestrator.runtime.cgroups import CgroupHandle, CgroupLimits, DeviceRule, DriverOptions, open_driver
from orchestrator.runtime.fsflags import mark_top_directory
from orchestrator.runtime.network import ipam
from orchestrator.runtime.network.dnsfiles import hosts_file, parse_resolv_conf, resolv_conf
from orchestrator.runtime.network.driver import NetworkDriver
from orchestrator.runtime.network.netlink import preload_codecs
from orchestrator.runtime.network.services import NetworkServices
from orchestrator.runtime.network.spec import EndpointSpec, IpamPool, NetworkSpec
from orchestrator.runtime.network.spec import PortSpec as DriverPortSpec
from orchestrator.runtime.process.runtime import (
    ContainerState,
    ExecSpec,
    ForkServerRuntime,
    InvalidStateError,
    Stdio,
    output_pipe,
)
from orchestrator.runtime.process.server import fork_server_dirs
from orchestrator.runtime.process.spec import (
    DEFAULT_PATH,
    BindMount,
    ContainerSpec,
    Device,
    EtcFiles,
    Init,
    Mount,
    Namespace,
    NamespaceMode,
    Namespaces,
    OverlayRootfs,
    ProcessSpec,
    Rlimit,
    Seccomp,
    SeccompMode,
    TmpfsMount,
    User,
    VolumeMount,
)
from orchestrator.state.logs import LogOptions, LogWriter, log_files
from orchestrator.state.proc import pid_start_time, same_process
from orchestrator.state.records import ContainerRecord, EndpointRecord
from orchestrator.state.store import FileStateStore
from orchestrator.swapfile import POOL_DIR, InodePool, inode_pool, overwrite

# Threads that block until a process ends (a stop's grace period, an exec): not bounded by the
# driver calls' limit, since each may wait for minutes while the others go on.
_WAIT_THREADS = 4096
_TEARDOWN_ATTEMPTS = 3  # a removed container's network teardown, on temporary errors
DEFAULT_SHM_SIZE = 64 * 1024 * 1024  # Docker's /dev/shm
# Containers prepared at once ahead of their start (KernelRuntime.prepare): enough to keep both
# CPUs of a small machine busy, few enough that the first ones asked for are ready first.
_PREPARING_AT_ONCE = 4
# Removes cleaning up at once (cgroups, logs, the container's directory), once their namespace
# is let go: a `down` of 30 had them all contend for the interpreter and both CPUs with the
# stops still to come, whose chain is what the command waits for (bench/results/up_down.md).
_CLEANING_AT_ONCE = 2


@dataclass
class _Prepared:
    """A container whose start is done but for letting its process run (KernelRuntime._prepare)."""

    name: str
    pid: int
    spec: ContainerSpec
    service: Service
    netns_file: Path
    kept: bool  # a restart in the namespace of the previous run
    terminal: tuple[int, int, int] | None
    attached: bool
    endpoints: list[EndpointRecord] = field(default_factory=list)
    keep_namespace: bool = False  # bind-mount the new namespace on netns_file at the release


def _joins_a_peer(service: Service) -> bool:
    """Whether the service joins another container's namespaces (``network_mode``, ``ipc`` or
    ``pid`` set to ``service:X`` or ``container:X``)."""
    return any(
        (value or "").startswith(("service:", "container:"))
        for value in (service.network_mode, service.ipc, service.pid)
    )


@dataclass
class _Preparation:
    """A preparation going on in the background: its result or its error once ``done``."""

    done: anyio.Event = field(default_factory=anyio.Event)
    result: _Prepared | None = None
    error: Exception | None = None


class KernelRuntime:
    """Containers for one project. ``run_root`` holds runtime state (``/run/orc/<project>``),
    ``lib_root`` container layers, volumes and logs (``/var/lib/orc``)."""

    def __init__(
        self,
        project: str,
        run_root: Path,
        lib_root: Path,
        *,
        cgroup_prefix: str = "orc",
        images: Any | None = None,
        network: NetworkDriver | None = None,
        log_options: dict[str, LogOptions] | None = None,
    ) -> None:
        self.project = project
        self.run_root = run_root
        self.lib_root = lib_root
        # No pre-forked blank inits: in a burst (up) the pool is empty after two creates anyway,
        # a single restart measured the same without them (crash -> running 17.2 vs 17.0 ms),
        # and each blank is a ~16 MiB process (bench/results/up_down.md).
        # Files made and removed with every container (its spec, its namespace's mount point)
        # are kept for the next ones instead of freed (``swapfile.InodePool``).
        self._inode_pool = inode_pool(run_root / POOL_DIR)
        self.process = ForkServerRuntime(
            *fork_server_dirs(run_root, lib_root, project), blank_inits=0, inode_pool=self._inode_pool
        )
        self.cgroups = open_driver(DriverOptions(prefix=cgroup_prefix))
        self.network = network or NetworkDriver(
            root=run_root / "network",
            pools_v4=_normalised(ipam.DEFAULT_POOLS_V4),
            pools_v6=_normalised(ipam.DEFAULT_POOLS_V6),
        )
        self.images = images
        self.log_options = log_options or {}
        self._handles: dict[str, CgroupHandle] = {}
        self._specs: dict[str, Service] = {}
        self._network_names: dict[str, dict[str, str]] = {}
        self._network_info: dict[str, Any] = {}
        self._service_defs: dict[str, Service] = {}
        self._service_networks: dict[str, dict[str, str]] = {}
        self._images: dict[str, Any] = {}
        self._writers: dict[str, LogWriter] = {}
        self._pumps: dict[str, list[PumpHandle]] = {}
        self.logpump = LogPump()
        self._threads = anyio.CapacityLimiter(64)
        self._waiters = anyio.CapacityLimiter(_WAIT_THREADS)
        self._group: Any = None
        self._own_images = False
        self._image_options = ImageOptions()
        self._killed: set[str] = set()
        self._attached: dict[str, tuple[int, int, int]] = {}
        self._terminals: set[str] = set()
        self._cgroup_lock = threading.Lock()
        self._cleaning = anyio.Semaphore(_CLEANING_AT_ONCE)
        self._adopt_lock = threading.Lock()
        self._fresh: set[str] = set()
        # Starts begun ahead (prepare), by container name, until a start or settle() takes them.
        self._preparations: dict[str, _Preparation] = {}
        self._preparing: anyio.CapacityLimiter | None = None
        self._containers_root_marked = False
        # Removed containers whose network teardown (waiting for the kernel to take their
        # veths with their namespace, then dropping their leases) is still going on, and how
        # those that failed failed, until settle() reports them.
        self._teardowns: dict[str, anyio.Event] = {}
        self._teardown_failures: dict[str, str] = {}
        # Exits recorded by the process runtime and output drained by the log pump, handed
        # from their threads to the event loop (a wait for either holds no worker thread).
        self._wakeups = LoopWakeups()
        self.process.exit_hook = lambda container_id: self._wakeups.post(("exit", container_id))
        self._network_defs: dict[
            str, object
        ] = {}  # full name -> model.Network  # created here and never started (nothing of a run to forget)

    async def __aenter__(self) -> KernelRuntime:
        self._preparing = anyio.CapacityLimiter(_PREPARING_AT_ONCE)
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        threading.Thread(target=preload_codecs, name="orc-netlink-preload", daemon=True).start()
        self._group.start_soon(self._wakeups.run)
        self._group.start_soon(self._run, self._sweep_retired)
        try:
            host_resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            host_resolv = ""
        self._host_resolvers = parse_resolv_conf(host_resolv)
        self.services = NetworkServices(self.network, self._host_resolvers)
        await self.services.__aenter__()
        return self

    def _image_driver(self) -> Any:
        """The images driver, opened on first use (a project of x-orc rootfs services never
        loads the registry client)."""
        if self.images is None:
            from orchestrator.runtime.images.driver import LocalImages
            from orchestrator.runtime.images.store import ImageStore

            options = self._image_options
            self.images = LocalImages(
                ImageStore(self.lib_root / "images"),
                registry_options=_registry_options(options),
                base_dir=Path(options.base_dir) if options.base_dir else None,
            )
            self._own_images = True
        return self.images

    async def configure_images(self, options: ImageOptions) -> None:
        """Registry settings and the archive base directory for the next pulls. A driver opened
        with other settings drops its registry client (it reconnects with the new ones)."""
        if options == self._image_options:
            return
        self._image_options = options
        if self._own_images and self.images is not None:
            await self.images.aclose()
            self.images.registry_options = _registry_options(options)
            self.images.base_dir = Path(options.base_dir) if options.base_dir else None

    def _platform_of(self, reference: str) -> str | None:
        """The ``platform:`` of the services that run ``reference`` (None: this host's)."""
        for service in self._service_defs.values():
            if service.image == reference and service.platform:
                return service.platform
        return None

    async def __aexit__(self, *exc: object) -> None:
        # Removed containers' leases go before we do (shielded: a cancelled exit still waits,
        # at most a few seconds, rather than skipping the rest of this shutdown).
        with contextlib.suppress(Exception), anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await self._teardowns_done()
        if self._own_images and self.images is not None:
            await self.images.aclose()
        await self.services.__aexit__(None, None, None)
        self._group.cancel_scope.cancel()
        await self._group.__aexit__(None, None, None)
        self.logpump.close()
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        # A supervisor leaving while containers run (SIGTERM) hands them on like a crashed one:
        # the fork server stays their parent for the next supervisor.
        await anyio.to_thread.run_sync(lambda: self.process.close(hand_over=True))
        self.process.exit_hook = None
        self._wakeups.close()

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._threads)
        except OrcError:
            raise
        except OSError as exc:
            raise TemporaryError(f"{getattr(fn, '__name__', 'driver call')}: {exc}") from exc

    # --- images ------------------------------------------------------------------------------

    async def local_images(self, references: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for reference in references:
            if reference.startswith(BUILD_PREFIX):
                continue
            if reference.startswith(ROOTFS_PREFIX):
                if hostroot.is_host_reference(reference) or Path(reference[len(ROOTFS_PREFIX) :]).is_dir():
                    found[reference] = reference
                continue
            driver = self._image_driver()
            image = driver.get(reference)
            if image is None:
                continue
            platform = self._platform_of(reference)
            if platform is not None and hasattr(driver, "decide"):
                from orchestrator.runtime.images.policy import Action

                # pulled for another platform than the service's: absent, so the planner pulls
                if driver.decide(reference, platform=platform).action is not Action.USE_LOCAL:
                    continue
            self._images[reference] = image
            found[reference] = image.id
        return found

    async def pull(self, image: str) -> str:
        if image.startswith(BUILD_PREFIX):
            raise PermanentError(
                f"service {image[len(BUILD_PREFIX) :]} has build: but no image: orc does not build images"
                " (set image: to a pulled or loaded image, or x-orc.rootfs)"
            )
        if image.startswith(ROOTFS_PREFIX):
            raise NotFoundError(f"x-orc rootfs directory {image[len(ROOTFS_PREFIX) :]} does not exist")
        pulled = await self._image_driver().pull(image, platform=self._platform_of(image))
        self._images[image] = pulled
        return str(pulled.id)

    # --- networks and volumes ----------------------------------------------------------------

    def describe_networks(self, project: str, networks: Mapping[str, object]) -> None:
        self._network_defs.update(networks)

    async def create_network(self, project: str, name: str) -> NetworkInfo:
        spec = network_spec(project, name, self._network_defs.get(name))
        info = await self._run(self.network.create_network, spec)
        self._network_info[name] = info
        if not info.internal:
            await self.services.start_dns(info)
        return NetworkInfo(
            info.name,
            info.bridge,
            info.subnets[0] if info.subnets else None,
            info.gateways[0] if info.gateways else None,
        )

    async def remove_network(self, project: str, name: str) -> None:
        self.services.stop_dns(name)
        self._network_info.pop(name, None)
        leaving = set(self._teardowns)
        if leaving:
            # The network is in use until its removed containers' leases go, after the kernel has
            # torn their namespaces down; its bridge's deletion (~45 ms, RCU) and its firewall
            # rules' overlap that wait when they are the only ones on it.
            async with anyio.create_task_group() as group:
                group.start_soon(self._run, self.network.unbuild_ahead, name, project, leaving)
                await self._teardowns_done()
        await self._run(self.network.remove_network, name, project)

    def _volume_dir(self, name: str) -> Path:
        return self.lib_root / "volumes" / name / "_data"

    async def create_volume(self, project: str, name: str) -> None:
        self._volume_dir(name).mkdir(parents=True, exist_ok=True)

    async def remove_volume(self, project: str, name: str) -> None:
        directory = self._volume_dir(name).parent
        await self._run(shutil.rmtree, directory, True)

    # --- containers --------------------------------------------------------------------------

    def _container_dir(self, name: str) -> Path:
        return self.lib_root / "containers" / name

    def _mark_containers_root(self) -> None:
        """Spread the containers' directories over ext4's block groups (``runtime.fsflags``):
        a hint only, so a filesystem that refuses it changes nothing."""
        root = self.lib_root / "containers"
        root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            mark_top_directory(root)
        self._containers_root_marked = True

    def _etc_dir(self, name: str) -> Path:
        """Where a container's ``hostname``, ``hosts`` and ``resolv.conf`` live: its own directory,
        as Docker keeps them (no directory of their own: one inode fewer per container)."""
        return self._container_dir(name)

    async def create(self, request: ContainerRequest) -> CreatedContainer:
        service = request.source
        if not isinstance(service, Service):
            raise PermanentError(f"container {request.name}: no service definition to create it from")
        problems = refs_of(service).problems
        if problems:
            raise PermanentError("; ".join(problems))
        if not self._containers_root_marked:
            self._mark_containers_root()
        directory = self._container_dir(request.name)
        for sub in ("upper", "work"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        kept = self._kept_volumes_dir(request.name)
        if kept.is_dir() and not (directory / "volumes").exists():
            kept.rename(directory / "volumes")  # the anonymous volumes of the container it replaces
        self._specs[request.name] = service
        self._fresh.add(request.name)
        self._network_names[request.name] = dict(
            zip(service.networks_by_priority(), request.networks, strict=False)
        )
        # In the container's own directory, as Docker keeps its json-file logs: ext4 spreads
        # those directories over its block groups (``_mark_containers_root``), where a shared
        # logs directory made every new log scan past the ones freed there in the last minutes.
        log_path = directory / f"{request.name}.log"
        digest = request.image if request.image.startswith(ROOTFS_PREFIX) else ""
        image = self._images.get(request.image)
        if image is None and not request.image.startswith(ROOTFS_PREFIX):
            image = self._image_driver().get(request.image)
            if image is None:
                raise NotFoundError(f"image {request.image} is not present")
            self._images[request.image] = image
        if image is not None:
            digest = str(image.id)
        healthcheck = None
        check = image.config.healthcheck if image is not None else None
        if check is not None and check.test:
            healthcheck = {
                "test": list(check.test),
                "interval": check.interval_ns / 1e9 or None,
                "timeout": check.timeout_ns / 1e9 or None,
                "start_period": check.start_period_ns / 1e9 or None,
                "start_interval": check.start_interval_ns / 1e9 or None,
                "retries": check.retries or None,
            }
        return CreatedContainer(
            healthcheck=healthcheck,
            container_id=os.urandom(32).hex(),
            image_digest=digest,
            rootfs=str(directory),
            log_path=str(log_path),
        )

    def _lower_dirs(self, record: ContainerRecord) -> tuple[str, ...]:
        if record.image.startswith(ROOTFS_PREFIX):
            return (record.image[len(ROOTFS_PREFIX) :],)
        image = self._image_of(record.image)
        if image is None:
            raise NotFoundError(f"image {record.image} is not present")
        return tuple(str(d) for d in image.lower_dirs)

    def _image_of(self, reference: str) -> Any | None:
        """The local image of a container's reference. A container created by an earlier
        supervisor may run one the current files no longer name (an ``up --locked`` pin)."""
        image = self._images.get(reference)
        if image is None and not reference.startswith((ROOTFS_PREFIX, BUILD_PREFIX)):
            image = self._image_driver().get(reference)
            if image is not None:
                self._images[reference] = image
        return image

    def describe(self, project: str, service: str, source: object | None, networks: tuple[str, ...]) -> None:
        if isinstance(source, Service):
            self._service_defs[service] = source
            self._service_networks[service] = dict(zip(source.networks_by_priority(), networks, strict=False))

    def _service(self, record: ContainerRecord) -> Service:
        service = self._specs.get(record.name) or self._service_defs.get(record.service)
        if service is None:
            raise PermanentError(f"container {record.name}: its service definition is not loaded")
        return service

    def prepare(self, record: ContainerRecord) -> None:
        """Begin the start of a created container now, in the background: everything but letting
        its process run (see :meth:`start`). The next :meth:`start` of it waits for this and then
        only releases the process; :meth:`settle` undoes a preparation no start used."""
        name = record.name
        if name in self._preparations or name in self._attached:
            return
        service = self._specs.get(name)
        if service is not None and _joins_a_peer(service):
            return  # it needs the peer's process (its namespaces): its start does it all, after it
        preparation = _Preparation()
        self._preparations[name] = preparation
        self._group.start_soon(self._prepare_in_background, record, preparation)

    async def _prepare_in_background(self, record: ContainerRecord, preparation: _Preparation) -> None:
        try:
            # First come, first prepared: the reconciler asks as the creates finish, in the
            # plan's (dependency) order when nothing else holds them, so the containers released
            # first tend to be ready first.
            assert self._preparing is not None  # set on entering the runtime
            async with self._preparing:
                preparation.result = await self._prepare(record)
        except Exception as exc:
            preparation.error = exc
        finally:
            preparation.done.set()

    async def start(self, record: ContainerRecord) -> StartedContainer:
        preparation = self._preparations.pop(record.name, None)
        prepared: _Prepared | None = None
        if preparation is not None:
            await preparation.done.wait()
            if preparation.error is not None:
                raise preparation.error
            prepared = preparation.result
            if prepared is not None and record.name in self._attached:
                # attached to a caller after it was prepared: start it again the attached way
                await self._undo_start(prepared)
                prepared = None
        if prepared is None:
            prepared = await self._prepare(record)
        return await self._release(record, prepared)

    async def _prepare(self, record: ContainerRecord) -> _Prepared:
        """Everything of a start before its process may run: the cgroup, the /etc files, the
        init forked and waiting, its veths and addresses. The synchronous work runs in as few
        worker-thread hops as possible (two): each hop costs the event loop, which every
        container shares."""
        service = self._service(record)
        name = record.name
        netns_file = self._netns_file(record.project, name)
        pending = self._teardowns.get(name)
        if pending is not None:  # a container of the same name, removed: its veths have our names
            await pending.wait()
        if name in self._fresh:
            self._fresh.discard(name)  # created by this runtime and never started: nothing to forget
        else:
            await self._forget(name, keep_network=True)
        networks = _network_endpoints(
            record, service, self._network_names.get(name) or self._service_networks.get(record.service, {})
        )
        # A restart joins the namespace of the previous run, still wired to its bridges: no new
        # veths, same addresses (Docker keeps its sandbox the same way).
        kept = bool(networks) and os.path.ismount(netns_file)
        resolver = None
        if networks:
            info = self._network_info.get(networks[0].network) or await self._run(
                self.network.network, networks[0].network
            )
            self._network_info[networks[0].network] = info
            resolver = info.gateways[0] if info.gateways and not info.internal else None
        attached = self._attached.pop(name, None)
        terminal = attached if attached is not None and name in self._terminals else None
        self._terminals.discard(name)
        pipes: tuple[int, int, int, int] | None = None
        if attached is None:
            out_read, out_write = output_pipe()
            err_read, err_write = output_pipe()
            pipes = (out_read, out_write, err_read, err_write)
        try:
            pid, spec, hostname = await self._run(
                self._prepare_and_create,
                record,
                service,
                netns_file,
                kept,
                resolver,
                attached,
                terminal,
                pipes,
            )
        except BaseException:
            if pipes is not None:
                for fd in (pipes[0], pipes[2]):
                    os.close(fd)
            raise
        finally:
            if pipes is not None:
                os.close(pipes[1])
                os.close(pipes[3])
        if pipes is not None:
            self._start_pump(record, pipes[0], pipes[2])
        prepared = _Prepared(name, pid, spec, service, netns_file, kept, terminal, attached is not None)
        try:
            if kept:
                prepared.endpoints = list(record.networks)
            elif networks:
                attachments = await self._run(self._wire, name, pid, networks, hostname, service)
                prepared.endpoints = [
                    EndpointRecord(a.network, a.ifname, a.ipv4, a.ipv6, a.mac, list(a.names))
                    for a in attachments
                ]
                prepared.keep_namespace = True
            elif service.network_mode == "none":
                await self._run(self.network.prepare_mode, "none", f"/proc/{pid}/ns/net")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._undo_start(prepared)
            raise
        return prepared

    async def _release(self, record: ContainerRecord, prepared: _Prepared) -> StartedContainer:
        """Let a prepared container's process run: its published ports, then its init's release."""
        name, pid, service = prepared.name, prepared.pid, prepared.service
        ports: list[str] = []
        try:
            addresses = [e.ipv4 for e in prepared.endpoints if e.ipv4]
            if service.ports and addresses:
                ports = await self._publish(name, addresses[0], service)
            await self._run(self._release_sync, name, pid, prepared.netns_file, prepared.keep_namespace)
            if prepared.terminal is not None:
                self._shuttle_terminal(name, prepared.terminal)
            elif not prepared.attached and prepared.spec.process.tty:
                # `tty: true`: the output comes from the terminal's master end (all as stdout,
                # as Docker logs it); unread, the process would block once the terminal fills.
                master = self.process.console(name)
                if master is not None:
                    self._start_pump(record, os.dup(master), None)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._undo_start(prepared)
            raise
        return StartedContainer(pid, pid_start_time(pid), tuple(prepared.endpoints), tuple(ports))

    def _release_sync(self, name: str, pid: int, netns_file: Path, keep_namespace: bool) -> None:
        """In a worker thread: the namespace kept on ``netns_file`` (for restarts), then the
        process released."""
        if keep_namespace:
            _keep_netns(pid, netns_file, self._inode_pool)
        self.process.start(name)

    async def _undo_start(self, prepared: _Prepared) -> None:
        """What a start made, taken back (its preparation failed or was never released)."""
        name = prepared.name
        with contextlib.suppress(Exception):
            await self._run(self.process.delete, name, True)
        with contextlib.suppress(Exception):
            await self._run(_release_netns, prepared.netns_file, self._inode_pool)
        with contextlib.suppress(Exception):
            await self._run(self.network.disconnect, name)
        handle = self._handles.pop(name, None)
        if handle is not None:
            with contextlib.suppress(Exception):
                await self._run(self.cgroups.remove, handle, True)

    async def _publish(self, name: str, address: str, service: Service) -> list[str]:
        await self.services.unpublish(name)  # a previous run's ports
        bindings = await self.services.publish(name, address, [_port(p) for p in service.ports])
        return [f"{b}->{b.target}/{b.protocol}" for b in bindings]

    def _prepare_and_create(
        self,
        record: ContainerRecord,
        service: Service,
        netns_file: Path,
        kept: bool,
        resolver: str | None,
        attached: tuple[int, int, int] | None,
        terminal: tuple[int, int, int] | None,
        pipes: tuple[int, int, int, int] | None,
    ) -> tuple[int, ContainerSpec, str]:
        """In a worker thread: the cgroup, the /etc files, the spec, then the fork server's
        ``create``. Returns the init's pid, the spec and the hostname; on failure the cgroup is
        removed again."""
        name = record.name
        handle = self._create_cgroup(record.project, name, cgroup_limits(service))
        self._handles[name] = handle
        try:
            etc = self._etc_dir(name)
            etc.mkdir(parents=True, exist_ok=True)
            joins, peer_etc = self._namespace_joins(record, service)
            extra_mounts: list[Mount] = [
                *write_file_mounts(self._container_dir(name) / "files", refs_of(service).files)
            ]
            extra_mounts += self._volumes_from(record, service)
            self._copy_up_volumes(record, service)
            hostname = service.hostname or record.container_id[:12]
            if peer_etc is not None:
                # network_mode service:/container: shares the peer's names and resolver (as Docker).
                hostname = (peer_etc / "hostname").read_text().strip() or hostname
            overwrite(etc / "hostname", f"{hostname}\n".encode())
            if not kept:
                overwrite(
                    etc / "hosts",
                    hosts_file(
                        hostname,
                        [],
                        extra_hosts=[
                            f"{h.hostname}:{h.address}"
                            for h in service.extra_hosts
                            if h.address != "host-gateway"
                        ],
                    ).encode(),
                )
            overwrite(
                etc / "resolv.conf",
                resolv_conf(
                    self._host_resolvers, resolver, service.dns, service.dns_search, service.dns_opt
                ).encode(),
            )
            spec = self.container_spec(
                record,
                service,
                handle,
                hostname,
                str(netns_file) if kept else None,
                extra_mounts=extra_mounts,
                joins=joins,
                etc_dir=peer_etc,
            )
            if terminal is not None:
                # `run` on a terminal: a pseudo-terminal of its own, shuttled to the caller's.
                # Sized before its process runs: a program asking at once gets the caller's size.
                size = window_size((terminal[0], terminal[1]))
                spec = replace(spec, process=replace(spec.process, tty=True, console_size=size))
                pid = self.process.create(spec, Stdio())
            elif attached is not None:
                # `run` in the foreground: the caller's own descriptors, no log file.
                pid = self.process.create(spec, Stdio(*attached))
            else:
                assert pipes is not None
                # The fork server keeps copies of the read ends: the output survives us (process
                # runtime, Stdio.readers) and the next supervisor drains it.
                pid = self.process.create(
                    spec, Stdio(stdout=pipes[1], stderr=pipes[3], readers=(pipes[0], pipes[2]))
                )
        except BaseException:
            with contextlib.suppress(Exception):
                self.cgroups.remove(self._handles.pop(name), True)
            raise
        return pid, spec, hostname

    def _wire(
        self,
        name: str,
        pid: int,
        networks: list[Any],
        hostname: str,
        service: Service,
    ) -> list[Any]:
        """In a worker thread: veths and addresses, then the final /etc/hosts."""
        attachments = self.network.connect(name, f"/proc/{pid}/ns/net", networks)
        addresses = [a.ipv4 for a in attachments if a.ipv4]
        gateway = attachments[0].gateway4 if attachments else None
        # In place (the container's /etc/hosts is a bind mount of this inode), not truncated
        # first (``swapfile.overwrite``).
        overwrite(
            self._etc_dir(name) / "hosts",
            hosts_file(
                hostname,
                addresses,
                [name, service.name],
                [f"{h.hostname}:{h.address}" for h in service.extra_hosts],
                host_gateway=gateway,
            ).encode(),
        )
        return list(attachments)

    def _create_cgroup(self, project: str, name: str, limits: CgroupLimits) -> CgroupHandle:
        # The driver prepares a project's parent cgroups on first use; two threads doing that at
        # once can leave a v1 cpuset parent without cpus (tasks then fail with ENOSPC).
        with self._cgroup_lock:
            return self.cgroups.create(project, name, limits)

    def _netns_file(self, project: str, name: str) -> Path:
        return self.run_root / project / "netns" / name

    def container_spec(
        self,
        record: ContainerRecord,
        service: Service,
        handle: CgroupHandle,
        hostname: str,
        join_netns: str | None = None,
        *,
        extra_mounts: Sequence[Mount] = (),
        joins: dict[str, str] | None = None,
        etc_dir: Path | None = None,
    ) -> ContainerSpec:
        image = self._image_of(record.image)
        config = image.config if image is not None else None
        args = _arguments(service, config)
        if not args:
            raise PermanentError(
                f"container {record.name}: no command (neither the service nor the image sets one)"
            )
        env: dict[str, str] = {"PATH": DEFAULT_PATH}
        if config is not None:
            env.update(config.env_dict())
        env["HOSTNAME"] = hostname
        env.update(service.container_environment())
        etc = etc_dir or self._etc_dir(record.name)
        directory = self._container_dir(record.name)
        try:
            stop_signal = int(
                signal.Signals[
                    _signal_name(service.stop_signal or (config.stop_signal if config else None) or "SIGTERM")
                ]
            )
        except KeyError as exc:
            raise PermanentError(
                f"service {service.name}: unknown stop_signal {service.stop_signal}"
            ) from exc
        spec = ContainerSpec(
            id=record.name,
            rootfs=OverlayRootfs(
                self._lower_dirs(record),
                str(directory / "upper"),
                str(directory / "work"),
                read_only=service.read_only,
                remove_on_delete=False,
            ),
            process=ProcessSpec(
                args=tuple(args),
                env=tuple(sorted(env.items())),
                cwd=service.working_dir or (config.working_dir if config and config.working_dir else "/"),
                user=User(
                    service.user or (config.user if config and config.user else "0"), tuple(service.group_add)
                ),
                tty=service.tty,
            ),
            mounts=(*self._mounts(service, record.name, config.volumes if config else ()), *extra_mounts),
            etc_files=EtcFiles(str(etc / "hosts"), str(etc / "resolv.conf"), str(etc / "hostname")),
            hostname=hostname,
            domainname=service.domainname,
            namespaces=_namespaces(service, join_netns, joins or {}),
            cap_add=service.cap_add,
            cap_drop=service.cap_drop,
            privileged=service.privileged,
            sysctls=tuple(sorted(service.sysctls.items())),
            oom_score_adj=service.oom_score_adj,
            no_new_privileges=_no_new_privileges(service.security_opt),
            seccomp=_seccomp(service),
            devices=tuple(Device(d.source, d.target, d.permissions) for d in service.devices),
            rlimits=tuple(Rlimit(name, u.soft, u.hard) for name, u in sorted(service.ulimits.items())),
            init=Init() if service.init else None,
            shm_size_bytes=service.shm_size or DEFAULT_SHM_SIZE,
            stop_signal=stop_signal,
            stop_grace_seconds=service.effective_stop_grace_period,
            cgroup_dirs=tuple(str(d) for d in handle.directories),
        )
        if hostroot.is_host_reference(record.image):
            spec = hostroot.adapt(spec, record.image, self.lib_root / "hostroot", service.working_dir)
        return spec

    def _mounts(self, service: Service, container: str, image_volumes: Sequence[str] = ()) -> list[Mount]:
        mounts: list[Mount] = []
        refs = refs_of(service)
        for mount in service.volumes:
            if mount.type == "bind" and mount.source:
                mounts.append(
                    BindMount(
                        mount.source,
                        mount.target,
                        mount.read_only,
                        create_host_path=bool(mount.bind.create_host_path) if mount.bind else True,
                    )
                )
            elif mount.type == "volume":
                subpath = mount.volume.subpath if mount.volume else None
                mounts.append(
                    VolumeMount(
                        str(self._volume_directory(service, container, mount.target, refs, mount.source)),
                        mount.target,
                        mount.read_only,
                        subpath=subpath,
                    )
                )
            elif mount.type == "tmpfs":
                size = mount.tmpfs.size if mount.tmpfs else None
                mounts.append(TmpfsMount(mount.target, size))
            else:
                raise PermanentError(f"service {service.name}: {mount.type} mounts are not supported")
        for mount in service.tmpfs:
            mounts.append(TmpfsMount(mount.target))
        for target in self._image_volume_targets(service, image_volumes):
            directory = self._volume_directory(service, container, target, refs, None)
            mounts.append(VolumeMount(str(directory), target, False))
        return mounts

    @staticmethod
    def _image_volume_targets(service: Service, image_volumes: Sequence[str]) -> list[str]:
        taken = [m.target for m in service.volumes] + [t.target for t in service.tmpfs]
        return image_volume_targets(image_volumes, taken)

    def _volume_directory(
        self, service: Service, container: str, target: str, refs: Any, key: str | None
    ) -> Path:
        """The host directory behind a volume mount: a named volume's ``_data`` (or its
        ``driver_opts`` bind device), or an anonymous volume kept with the container, named
        after its target (a recreated container is handed its predecessor's)."""
        if not key:
            directory = self._container_dir(container) / "volumes" / anonymous_key(target)
            directory.mkdir(parents=True, exist_ok=True)
            return directory
        ref = refs.volume(key)
        if ref is not None and ref.device:
            device = Path(ref.device)
            if not device.is_dir():
                raise PermanentError(
                    f"service {service.name}: volume {ref.name}: bind device {ref.device} is not a directory"
                )
            return device
        name = ref.name if ref is not None else f"{self.project}_{key}"
        directory = self._volume_dir(name)
        if ref is not None and ref.external:
            if not directory.is_dir():
                raise PermanentError(
                    f"service {service.name}: external volume {name!r} not found (expected {directory})"
                )
            return directory
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _copy_up_volumes(self, record: ContainerRecord, service: Service) -> None:
        """Docker's copy-up: an empty named or anonymous volume gets the image's content at its
        target (not with ``nocopy`` or a subpath, not for external or bind-device volumes, not
        on the host's own userland). Only at the container's first start, as Docker copies at
        create: a volume emptied later stays empty across restarts."""
        marker = self._container_dir(record.name) / "volumes-initialised"
        if hostroot.is_host_reference(record.image) or marker.exists():
            return
        refs = refs_of(service)
        lower_dirs: tuple[str, ...] | None = None
        wanted: list[tuple[str, Path]] = []
        for mount in service.volumes:
            if mount.type != "volume" or (mount.volume and (mount.volume.nocopy or mount.volume.subpath)):
                continue
            ref = refs.volume(mount.source) if mount.source else None
            if ref is not None and (ref.external or ref.device):
                continue
            wanted.append(
                (mount.target, self._volume_directory(service, record.name, mount.target, refs, mount.source))
            )
        image = self._image_of(record.image)
        for target in self._image_volume_targets(service, image.config.volumes if image is not None else ()):
            wanted.append((target, self._volume_directory(service, record.name, target, refs, None)))
        for target, directory in wanted:
            if lower_dirs is None:
                lower_dirs = self._lower_dirs(record)
            copy_up(lower_dirs, target, directory)
        if wanted:  # with none, the next start finds none again: no marker file to make
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()

    def _peer(self, project: str, reference: str, kind: str, *, running: bool) -> ContainerRecord:
        """The container ``kind`` (``service`` or ``container``) ``reference`` names: the first
        replica of a service, preferring running ones; ``running`` insists on a live one."""
        records = FileStateStore(self.run_root).list_containers(project)
        if kind == "service":
            candidates = [r for r in records if r.service == reference and not r.one_off]
        else:
            candidates = [r for r in records if r.name == reference]
        candidates.sort(key=lambda r: (not self.alive(r), r.number))
        if not candidates or (running and not self.alive(candidates[0])):
            what = "running container" if running else "container"
            raise TemporaryError(f"{kind} {reference} has no {what} yet", retry_after=0.5)
        return candidates[0]

    def _namespace_joins(
        self, record: ContainerRecord, service: Service
    ) -> tuple[dict[str, str], Path | None]:
        """``network_mode``/``ipc``/``pid: service:X`` (or ``container:X``): the namespace files of
        X's first running container, and X's /etc directory when the network is shared."""
        joins: dict[str, str] = {}
        peer_etc = None
        for kind, value in (("net", service.network_mode), ("ipc", service.ipc), ("pid", service.pid)):
            how, _, reference = (value or "").partition(":")
            if how not in ("service", "container") or not reference:
                continue
            peer = self._peer(record.project, reference, how, running=True)
            joins[kind] = f"/proc/{peer.pid}/ns/{kind}"
            if kind == "net":
                peer_etc = self._etc_dir(peer.name)
        return joins, peer_etc

    def _volumes_from(self, record: ContainerRecord, service: Service) -> list[Mount]:
        """Every bind and volume mount of the named containers (not tmpfs, as Docker), read-only
        with ``:ro``; a stopped source is fine."""
        mounts: list[Mount] = []
        for source in service.volumes_from:
            peer = self._peer(record.project, source.source, source.kind, running=False)
            peer_service = self._specs.get(peer.name) or self._service_defs.get(peer.service)
            if peer_service is None:
                raise PermanentError(
                    f"service {service.name}: volumes_from {source.source}: its definition is not loaded"
                )
            for mount in self._mounts(peer_service, peer.name):
                if isinstance(mount, BindMount | VolumeMount):
                    mounts.append(replace(mount, read_only=mount.read_only or source.read_only))
        return mounts

    def _start_pump(self, record: ContainerRecord, out_fd: int, err_fd: int | None) -> None:
        """Hand the container's output (pipes, or a terminal's master end) to the log pump."""
        name = record.name
        writer = self._writers.get(name)
        if writer is None and record.log_path:
            options = self.log_options.get(record.service) or _log_options(self._specs.get(name))
            writer = LogWriter(Path(record.log_path), options)
            self._writers[name] = writer
        sources = [(out_fd, "stdout")] + ([(err_fd, "stderr")] if err_fd is not None else [])
        handle = self.logpump.add(
            sources,
            writer.write if writer is not None else None,
            lambda: self._wakeups.post(("pumped", name)),
        )
        if err_fd is None and name in self._pumps:
            self._pumps[name].append(handle)  # a terminal's output next to the run's pipes
        else:
            self._pumps[name] = [handle]

    async def _pumped(self, name: str, timeout: float) -> None:
        """Wait (at most ``timeout``) until the log pump has read the container's output to its end."""
        with anyio.move_on_after(timeout):
            for handle in self._pumps.get(name, []):
                await self._until(("pumped", name), handle.done.is_set)

    async def _until(self, key: tuple[str, ...], condition: Callable[[], bool]) -> None:
        """Wait in the event loop until ``condition()`` holds; a helper thread posts ``key`` to
        the wake-ups when it may have come true."""
        while True:
            event = self._wakeups.register(key)
            try:
                if condition():
                    return
                await event.wait()
            finally:
                self._wakeups.unregister(key, event)

    def _stop_pumps(self, name: str) -> None:
        for handle in self._pumps.pop(name, []):
            self.logpump.forget(handle)

    def _known(self, name: str) -> bool:
        try:
            self.process.state(name)
        except NotFoundError:
            return False
        return True

    async def _adopt_orphan(self, record: ContainerRecord) -> bool:
        """A live container whose fork server died with its supervisor: hand it to ours (by pid,
        checked against its start time) with the spec recorded at create, so exec, stop and
        wait go through the process runtime. False if that cannot be done."""
        if record.pid is None or not self.alive(record):
            return False
        return bool(await self._run(self._adopt_orphan_once, record.name, record.pid, record.pid_start_time))

    def _adopt_orphan_once(self, name: str, pid: int, start_time: int | None) -> bool:
        # The container's watcher and an exec may both ask at once: one adopts, both succeed.
        with self._adopt_lock:
            if self._known(name):
                return True
            try:
                self.process.adopt_recorded(name, pid, start_time)
            except OrcError:
                return False
            return True

    async def wait(self, record: ContainerRecord) -> ExitStatus:
        if not self._known(record.name) and not await self._adopt_orphan(record):
            return await self._wait_adopted(record)
        if record.name not in self._pumps:
            # Taken over from an earlier supervisor's fork server: drain what its pipes hold.
            readers = self.process.take_readers(record.name)
            if len(readers) == 2:
                self._start_pump(record, readers[0], readers[1])
            else:
                for fd in readers:
                    os.close(fd)
        # Recorded by the process runtime's reader thread, which then posts the exit; or the
        # fork server is gone, with every exit still unknown.
        await self._until(
            ("exit", record.name),
            lambda: self.process.wait(record.name, 0) is not None or self.process.wait_closed(0),
        )
        status = self.process.wait(record.name, 0)
        if status is None:
            raise TemporaryError(f"container {record.name}: lost track of its process")
        await self._pumped(record.name, 1.0)  # the last lines before the exit reach the log first
        return ExitStatus(status.code, status.oom_killed)

    async def _wait_adopted(self, record: ContainerRecord) -> ExitStatus:
        """A container started by an earlier supervisor: not our child, so wait on a pidfd.
        Its exit code cannot be read (only its parent could); it is reported as 255."""
        if not self.alive(record) or record.pid is None:
            return ExitStatus(255)
        try:
            pidfd = os.pidfd_open(record.pid)
        except ProcessLookupError:
            return ExitStatus(255)
        try:
            if not self.alive(record):  # the pid may have been reused before pidfd_open
                return ExitStatus(255)
            await fdio.wait_readable(pidfd)
        finally:
            os.close(pidfd)
        handle = self._handles.get(record.name) or await self._run(
            self.cgroups.open, record.project, record.name
        )
        oom = bool(handle is not None and await self._run(self.cgroups.oom_killed, handle))
        return ExitStatus(137 if record.name in self._killed else 255, oom)

    async def stop(self, record: ContainerRecord, signal_name: str, timeout: float) -> None:
        # Adopting first (as its watcher may be doing at this moment) keeps one owner of the
        # container's exit: the process runtime, not a second pid-polling path racing it.
        if self._known(record.name) or await self._adopt_orphan(record):
            await self._stop_known(record.name, timeout)
        elif self.alive(record) and record.pid is not None:
            await self._stop_adopted(record, signal_name, timeout)
        await self.services.unpublish(record.name)

    async def _stop_known(self, name: str, timeout: float) -> None:
        """The process runtime's stop (signal, ``timeout``, SIGKILL), its waits in the event loop:
        the reader thread's post of the exit wakes it, as it wakes the container's watcher, with
        no worker thread blocked on the exit to hand it over (a ``down`` waits for its chain of
        dependent stops one after the other)."""
        process = self.process

        def ended() -> bool:
            return process.wait(name, 0) is not None or process.wait_closed(0)

        for signal_step, wait_seconds in ((None, timeout), (signal.SIGKILL, 30.0)):
            if ended():
                return
            if signal_step is None:
                # From the event loop, without a worker-thread hop or the fork server's answer:
                # the exit says the signal arrived, the grace period covers one that did not.
                process.begin_stop(name, wait=False)
            else:
                with contextlib.suppress(InvalidStateError):
                    await self._run(process.kill, name, signal_step)
            with anyio.move_on_after(wait_seconds):
                await self._until(("exit", name), ended)
        if not ended():
            raise TemporaryError(f"container {name} did not die after SIGKILL", retry_after=1.0)

    async def _stop_adopted(self, record: ContainerRecord, signal_name: str, timeout: float) -> None:
        assert record.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, int(signal.Signals[_signal_name(signal_name)]))
        with anyio.move_on_after(timeout):
            while self.alive(record):
                await anyio.sleep(0.05)
        if self.alive(record):
            self._killed.add(record.name)
            handle = self._handles.get(record.name) or await self._run(
                self.cgroups.open, record.project, record.name
            )
            if handle is not None:
                await self._run(self.cgroups.kill, handle)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record.pid, signal.SIGKILL)

    async def kill(self, record: ContainerRecord, signal_name: str) -> None:
        await self._run(self.process.kill, record.name, int(signal.Signals[_signal_name(signal_name)]))

    async def remove(self, record: ContainerRecord, keep_anonymous_volumes: bool = False) -> None:
        name = record.name
        self._fresh.discard(name)
        await self.services.unpublish(name)
        self._stop_pumps(name)
        writer = self._writers.pop(name, None)
        if writer is not None:
            writer.close()
        released, retired = await self._run(self._retire_sync, record, keep_anonymous_volumes)
        self._specs.pop(name, None)
        # What is left only takes time (the retired directory's deletion, then the wait for the
        # namespace's veths to go and the release of its addresses): it holds no slot of the
        # reconciler's bound. In a `down`, the removes would otherwise queue behind each other's
        # cleanups, and the later ones let their namespaces go that much later.
        done = anyio.Event()
        self._teardowns[name] = done
        self._group.start_soon(self._finish_remove, name, retired, released, done)

    async def _finish_remove(
        self, name: str, retired: Path | None, released: bool | None, done: anyio.Event
    ) -> None:
        try:
            if retired is not None:
                async with self._cleaning:
                    await self._run(shutil.rmtree, retired, True)
            # After the deletion, not beside it: by then the kernel has mostly torn the
            # namespace down, and a wait for its veths to go polls (a thread each) for less.
            if released is not None:
                for attempt in range(1, _TEARDOWN_ATTEMPTS + 1):
                    try:
                        await self._run(self.network.disconnect, name, released)
                        break
                    except TemporaryError as exc:
                        if attempt == _TEARDOWN_ATTEMPTS:
                            raise
                        await anyio.sleep(max(exc.retry_after, 0.1 * attempt))
        except NotFoundError:
            pass
        except Exception as exc:
            self._teardown_failures[name] = str(exc)
        finally:
            if self._teardowns.get(name) is done:
                del self._teardowns[name]
            done.set()

    async def _teardowns_done(self) -> None:
        while self._teardowns:
            await next(iter(self._teardowns.values())).wait()

    async def settle(self) -> dict[str, str]:
        # Preparations no start took (their dependency failed, say): their inits must not stay.
        while self._preparations:
            name, preparation = next(iter(self._preparations.items()))
            await preparation.done.wait()
            if self._preparations.get(name) is preparation:
                del self._preparations[name]
                if preparation.result is not None:
                    await self._undo_start(preparation.result)
        await self._teardowns_done()
        failures, self._teardown_failures = self._teardown_failures, {}
        return failures

    def _kept_volumes_dir(self, name: str) -> Path:
        return self.lib_root / "containers" / f".{name}.anonymous-volumes"

    def _retire_sync(
        self, record: ContainerRecord, keep_anonymous_volumes: bool = False
    ) -> tuple[bool | None, Path | None]:
        """What a remove does before it returns, in one worker-thread hop: the process record
        and the network namespace go (the kernel begins tearing it down), then the cgroups (the
        project's too once empty), and the container's directory (its files and log) is renamed
        aside for its deletion in the background. Once this returned, a supervisor killed at any moment leaves
        nothing a container of the same name would meet: a directory left aside is deleted by
        the next one (:meth:`_sweep_retired`), the veths and leases go with the network
        (networking.md). With ``keep_anonymous_volumes`` (a recreate) its anonymous volumes are
        set aside for the container created next under the same name, as Docker Compose carries
        them over. Returns whether the namespace went with the process (see
        :meth:`_forget_sync`) and where the directory went, if it existed."""
        name = record.name
        released = self._forget_sync(name, False, defer_network=True, keep_cgroups=True)
        directory = self._container_dir(name)
        kept = self._kept_volumes_dir(name)
        shutil.rmtree(kept, True)
        anonymous = directory / "volumes"
        if keep_anonymous_volumes and anonymous.is_dir():
            anonymous.rename(kept)
        handle = self._handles.pop(name, None) or self.cgroups.open(record.project, name)
        if handle is not None:
            self.cgroups.remove(handle, True)
        if not any(h.project == record.project for h in list(self._handles.values())):
            self.cgroups.remove_project(record.project)  # only when it is empty
        if record.log_path:
            for file in log_files(Path(record.log_path)):
                if file.parent != directory:  # a log kept elsewhere (by an older orc)
                    file.unlink(missing_ok=True)
        retired = directory.parent / f"{_RETIRED_PREFIX}{self.project}.{name}.{os.urandom(4).hex()}"
        try:
            directory.rename(retired)
        except FileNotFoundError:
            return released, None
        return released, retired

    def _sweep_retired(self) -> None:
        """Delete the directories of this project's removed containers that a killed supervisor
        left aside (:meth:`_retire_sync`)."""
        root = self.lib_root / "containers"
        prefix = f"{_RETIRED_PREFIX}{self.project}."
        try:
            entries = [entry.path for entry in os.scandir(root) if entry.name.startswith(prefix)]
        except FileNotFoundError:
            return
        for path in entries:
            shutil.rmtree(path, True)

    async def _forget(self, name: str, keep_network: bool = False) -> None:
        """Delete the process runtime's record of a previous run (stopped) of this container; its
        network namespace and veths too unless ``keep_network`` and they are still held."""
        self._fresh.discard(name)
        await self._run(self._forget_sync, name, keep_network)

    def _forget_sync(
        self, name: str, keep_network: bool, defer_network: bool = False, keep_cgroups: bool = False
    ) -> bool | None:
        """With ``defer_network`` the network is not disconnected here: the result says whether
        it is due (None: not) and whether the namespace was let go with the process (True).
        With ``keep_cgroups`` the container's cgroups stay (the caller removes them)."""
        released: bool | None = None
        try:
            state = self.process.state(name)
        except NotFoundError:
            state = None
        if state is not None:
            self.process.delete(name, True)
        netns_file = self._netns_file(self.project, name)
        if not (keep_network and os.path.ismount(netns_file)):
            _release_netns(netns_file, self._inode_pool)
            # the process runtime's delete saw the init die: the namespace goes now
            released = state is not None
            if not defer_network:
                with contextlib.suppress(NotFoundError):
                    self.network.disconnect(name, namespace_released=released)
        handle = self._handles.get(name)
        if (
            handle is not None
            and not keep_cgroups
            and state is not None
            and state is not ContainerState.DELETED
        ):
            self.cgroups.remove(handle, True)
            del self._handles[name]
        return released if defer_network else None

    def attach_next_start(self, name: str, stdio: tuple[int, int, int]) -> None:
        self._attached[name] = stdio

    def use_terminal(self, name: str) -> None:
        """The next attached start of ``name`` (``run`` without ``-T`` on a terminal) gets a
        pseudo-terminal; its master end is shuttled to the descriptors given to
        :meth:`attach_next_start`."""
        self._terminals.add(name)

    def _shuttle_terminal(self, name: str, stdio: tuple[int, int, int]) -> None:
        master = self.process.console(name)
        if master is None:
            raise PermanentError(f"container {name}: the runtime allocated no terminal")
        # Own copies: the caller's descriptors are closed when its request ends, the master
        # when the container is deleted; the shuttle may outlive either by a moment.
        stdin, stdout, master = os.dup(stdio[0]), os.dup(stdio[1]), os.dup(master)
        copy_window_size((stdin, stdout), master)
        os.set_blocking(master, False)

        async def shuttle() -> None:
            try:
                async with anyio.create_task_group() as group:

                    async def output() -> None:
                        await _shuttle(master, stdout)
                        group.cancel_scope.cancel()  # the process is gone: stop reading input

                    group.start_soon(_shuttle, stdin, master)
                    group.start_soon(output)
                    group.start_soon(follow_window_size, (stdin, stdout), master)
            finally:
                for fd in (stdin, stdout, master):
                    os.close(fd)

        self._group.start_soon(shuttle)

    async def exec_attached(self, record: ContainerRecord, request: ExecRequest) -> int:
        if not self._known(record.name) and not await self._adopt_orphan(record):
            raise PermanentError(
                f"container {record.name} was started by an earlier supervisor; exec needs it restarted"
                " (orc restart)"
            )
        spec = ExecSpec(
            tuple(request.argv),
            env=tuple(sorted(request.env.items())),
            cwd=request.workdir,
            user=User(request.user) if request.user else None,
            privileged=request.privileged,
            tty=request.tty,
            console_size=window_size(request.stdio[:2]) if request.tty else None,
        )
        stdin, stdout, stderr = request.stdio
        if request.tty:
            return await self._exec_on_terminal(record, spec, stdin, stdout)
        handle = await self._run(self.process.exec, record.name, spec, Stdio(stdin, stdout, stderr))
        status = await anyio.to_thread.run_sync(
            self.process.wait_exec, handle, None, limiter=self._waiters, abandon_on_cancel=True
        )
        if status is None:
            raise TemporaryError(f"lost track of the exec in {record.name}")
        return int(status.code)

    async def _exec_on_terminal(
        self, record: ContainerRecord, spec: ExecSpec, stdin: int, stdout: int
    ) -> int:
        """``exec`` with a pseudo-terminal: the caller's terminal size is copied to it, its
        input goes to the master end and the master's output to the caller's stdout until the
        process exits and its last output is read."""
        handle = await self._run(self.process.exec, record.name, spec, Stdio())
        master = handle.console
        if master is None:
            raise PermanentError(f"exec in {record.name}: the runtime allocated no terminal")
        try:
            copy_window_size((stdin, stdout), master)
            os.set_blocking(master, False)
            async with anyio.create_task_group() as group:
                group.start_soon(follow_window_size, (stdin, stdout), master)
                group.start_soon(_shuttle, stdin, master)
                output_done = anyio.Event()

                async def output() -> None:
                    try:
                        await _shuttle(master, stdout)
                    finally:
                        output_done.set()

                group.start_soon(output)
                status = await anyio.to_thread.run_sync(
                    self.process.wait_exec, handle, None, limiter=self._waiters, abandon_on_cancel=True
                )
                with anyio.move_on_after(2.0):
                    await output_done.wait()
                group.cancel_scope.cancel()
        finally:
            os.close(master)
        if status is None:
            raise TemporaryError(f"lost track of the exec in {record.name}")
        return int(status.code)

    async def exec(self, record: ContainerRecord, argv: Sequence[str], timeout: float) -> ExecResult:
        if not self._known(record.name) and not await self._adopt_orphan(record):
            raise PermanentError(
                f"container {record.name} was started by an earlier supervisor; exec needs it restarted"
                " (orc restart)"
            )
        read_fd, write_fd = os.pipe()
        try:
            handle = await self._run(
                self.process.exec, record.name, ExecSpec(tuple(argv)), Stdio(stdout=write_fd, stderr=write_fd)
            )
        except OrcError as exc:
            os.close(read_fd)
            return ExecResult(-1, str(exc))
        finally:
            os.close(write_fd)
        chunks: list[bytes] = []

        async def collect() -> None:
            await _read_all(read_fd, chunks.append)

        async with anyio.create_task_group() as group:
            group.start_soon(collect)
            status = await anyio.to_thread.run_sync(
                self.process.wait_exec, handle, timeout, limiter=self._waiters
            )
            if status is None:
                with contextlib.suppress(OSError):
                    os.kill(handle.pid, signal.SIGKILL)
                group.cancel_scope.cancel()
        with contextlib.suppress(OSError):
            os.close(read_fd)
        output = b"".join(chunks).decode(errors="replace")
        if status is None:
            return ExecResult(-1, output, timed_out=True)
        return ExecResult(status.code, output)

    async def _handle_of(self, record: ContainerRecord) -> CgroupHandle:
        handle = self._handles.get(record.name) or await self._run(
            self.cgroups.open, record.project, record.name
        )
        if handle is None:
            raise NotFoundError(f"container {record.name} has no cgroup (is it running?)")
        return handle

    async def pause(self, record: ContainerRecord) -> None:
        await self._run(self.cgroups.freeze, await self._handle_of(record))

    async def unpause(self, record: ContainerRecord) -> None:
        await self._run(self.cgroups.thaw, await self._handle_of(record))

    async def top(self, record: ContainerRecord) -> list[tuple[int, str]]:
        processes = []
        for pid in await self._run(self.cgroups.pids, await self._handle_of(record)):
            try:
                cmdline = (
                    Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue
            processes.append((pid, cmdline.strip()))
        return sorted(processes)

    async def usage(self, record: ContainerRecord) -> ContainerUsage:
        """One reading of the container's counters (``orc stats``)."""
        handle = await self._handle_of(record)
        cgroup = await self._run(self.cgroups.stats, handle)
        net_rx = net_tx = 0
        if record.pid is not None and self.alive(record):
            net_rx, net_tx = await self._run(_net_counters, record.pid)
        block_read, block_write = await self._run(_block_counters, handle)
        return ContainerUsage(
            cpu_ns=cgroup.cpu_usage_ns,
            memory_usage=cgroup.memory_usage,
            memory_inactive_file=cgroup.memory_inactive_file,
            memory_limit=cgroup.memory_limit,
            pids=cgroup.pids_current,
            net_rx=net_rx,
            net_tx=net_tx,
            block_read=block_read,
            block_write=block_write,
        )

    def port(self, record: ContainerRecord, target: int, protocol: str) -> list[str]:
        return list(self.services.port(record.name, target, protocol))

    def alive(self, record: ContainerRecord) -> bool:
        if self._known(record.name):
            # Ours, or taken over from a surviving fork server: if it ended meanwhile, wait()
            # reports its real exit status, so it is watched like a live one until then.
            return True
        if record.pid is None or record.pid_start_time is None:
            return False
        return same_process(record.pid, record.pid_start_time)


_libc = ctypes.CDLL(None, use_errno=True)
_MS_BIND = 4096
_MNT_DETACH = 2


# The Compose network drivers and IPAM drivers orc implements (both are Linux bridges / its own).
_NETWORK_DRIVERS = (None, "", "bridge")
_IPAM_DRIVERS = (None, "", "default")


def network_spec(project: str, name: str, definition: object | None) -> NetworkSpec:
    """The driver's spec of the Compose network ``definition`` (a ``model.Network``; None: the
    implicit default network): its subnets, gateways and ranges, ``internal``, ``enable_ipv6``,
    driver options (bridge name, MTU, ICC, masquerading) and labels. A driver orc does not have
    is refused, naming the network, rather than quietly made a bridge."""
    if not isinstance(definition, Network):
        return NetworkSpec(project=project, name=name)
    if definition.driver not in _NETWORK_DRIVERS:
        raise PermanentError(
            f"network {definition.key}: orc does not support driver {definition.driver!r} (only bridge)"
        )
    if definition.ipam.driver not in _IPAM_DRIVERS:
        raise PermanentError(
            f"network {definition.key}: orc does not support ipam driver {definition.ipam.driver!r}"
        )
    pools = []
    for pool in definition.ipam.pools:
        if not pool.subnet:
            raise PermanentError(f"network {definition.key}: an ipam config entry without a subnet")
        pools.append(IpamPool(pool.subnet, pool.gateway, pool.ip_range, tuple(pool.aux_addresses.values())))
    return NetworkSpec(
        project=project,
        name=name,
        pools=tuple(pools),
        internal=definition.internal,
        enable_ipv6=bool(definition.enable_ipv6),
        driver_opts=tuple(sorted(definition.driver_opts.items())),
        external=definition.external,
        labels=tuple(sorted(definition.labels.items())),
    )


def _keep_netns(pid: int, target: Path, pool: InodePool) -> None:
    """Hold ``pid``'s network namespace open by bind-mounting it on ``target`` (a file from
    ``pool`` when it has one: only its inode matters, the mount covers its contents)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() and not pool.take(target):
        target.touch()
    if _libc.mount(f"/proc/{pid}/ns/net".encode(), str(target).encode(), None, _MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise TemporaryError(f"cannot keep the network namespace of {target.name}: {os.strerror(err)}")


# A removed container's directory, renamed aside (``.removed.<project>.<name>.<random>``) until
# it is deleted: a container created under the same name meanwhile gets a directory of its own.
_RETIRED_PREFIX = ".removed."


def _release_netns(target: Path, pool: InodePool) -> None:
    if os.path.ismount(target):
        _libc.umount2(str(target).encode(), _MNT_DETACH)
    pool.give(target)


def _net_counters(pid: int) -> tuple[int, int]:
    """Received and sent bytes over every interface but lo, in ``pid``'s network namespace;
    nothing for a process that exited after it was found alive (``stats`` must not fail then)."""
    received = sent = 0
    try:
        text = Path(f"/proc/{pid}/net/dev").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    for line in text.splitlines()[2:]:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() != "lo" and len(fields) >= 9:
            received += int(fields[0])
            sent += int(fields[8])
    return received, sent


def _block_counters(handle: CgroupHandle) -> tuple[int, int]:
    """Bytes read and written by the cgroup (v1 blkio throttle counters, v2 io.stat)."""
    read = written = 0
    blkio = handle.dir_for("blkio")
    if handle.version == 1 and blkio is not None:
        with contextlib.suppress(OSError):
            for line in (blkio / "blkio.throttle.io_service_bytes").read_text().splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] == "Read":
                    read += int(parts[2])
                elif len(parts) == 3 and parts[1] == "Write":
                    written += int(parts[2])
    elif handle.version == 2 and handle.directories:
        with contextlib.suppress(OSError):
            for line in (handle.directories[0] / "io.stat").read_text().splitlines():
                for field in line.split()[1:]:
                    key, _, value = field.partition("=")
                    if key == "rbytes":
                        read += int(value)
                    elif key == "wbytes":
                        written += int(value)
    return read, written


def _port(port: Any) -> DriverPortSpec:
    return DriverPortSpec(port.target, port.published, port.host_ip, port.protocol)


def _registry_options(options: ImageOptions) -> Any:
    """The images driver's ``RegistryOptions`` for the CLI's environment (defaults without one)."""
    from orchestrator.runtime.images.registry import RegistryOptions, options_from_environment

    if options.home is None and not options.environment:
        return RegistryOptions()
    return options_from_environment(options.environment, Path(options.home or "/root"))


def _normalised(pools: Sequence[ipam.PoolRange]) -> tuple[ipam.PoolRange, ...]:
    """Pools with host bits cleared (a base such as 172.17.0.0/12 names the network 172.16.0.0/12)."""
    return tuple(ipam.PoolRange(str(ipaddress.ip_network(p.base, strict=False)), p.size) for p in pools)


def cgroup_limits(service: Service) -> CgroupLimits:
    return CgroupLimits(
        memory=service.effective_memory_limit,
        memory_swap=service.memswap_limit,
        memory_reservation=service.effective_memory_reservation,
        memory_swappiness=service.mem_swappiness,
        cpus=service.effective_cpus,
        cpu_shares=service.cpu_shares,
        cpu_quota_us=service.cpu_quota,
        cpu_period_us=service.cpu_period,
        cpuset_cpus=service.cpuset,
        pids_limit=service.effective_pids_limit,
        blkio_weight=service.blkio_config.weight if service.blkio_config else None,
        unconfined_devices=service.privileged,
        extra_devices=tuple(_device_rule(d.source, d.permissions) for d in service.devices),
    )


def _device_rule(path: str, permissions: str) -> DeviceRule:
    """The cgroup rule that lets a container use the host device ``path``."""
    # the fork server resolves the same node when it creates it; imported here, not at the top,
    # because only services with `devices:` need it on the supervisor's side
    from orchestrator.runtime.process.forkserver import resolve_device

    node = resolve_device(path, path)
    return DeviceRule(node.kind, node.major, node.minor, permissions or "rwm")


def _arguments(service: Service, config: Any) -> list[str]:
    """Docker's rule: the service's entrypoint replaces the image's and drops the image's CMD."""
    if service.entrypoint is not None:
        entrypoint = list(service.entrypoint)
        command = list(service.command) if service.command is not None else []
    else:
        entrypoint = list(config.entrypoint or ()) if config is not None else []
        if service.command is not None:
            command = list(service.command)
        else:
            command = list(config.cmd or ()) if config is not None else []
    return entrypoint + command


def _network_endpoints(
    record: ContainerRecord, service: Service, names_by_key: dict[str, str]
) -> list[EndpointSpec]:
    if service.network_mode and service.network_mode not in ("bridge", "default"):
        return []
    endpoints = []
    for index, key in enumerate(service.networks_by_priority()):
        attachment = service.networks[key]
        network = names_by_key.get(key) or f"{record.project}_{key}"
        if record.one_off and not record.use_aliases:
            aliases: tuple[str, ...] = ()  # a `run` container: its own name only, never the service's
            names: tuple[str, ...] = (record.name,)
        else:
            aliases = tuple(attachment.aliases or ())
            names = (service.name, record.name, *aliases)
        endpoints.append(
            EndpointSpec(
                network=network,
                ipv4=attachment.ipv4_address,
                ipv6=attachment.ipv6_address,
                # a service-level mac_address goes to the first network, as Compose does
                mac=attachment.mac_address or (service.mac_address if index == 0 else None),
                aliases=aliases,
                dns_names=tuple(dict.fromkeys(names)),
                priority=attachment.priority,
            )
        )
    return endpoints


def _no_new_privileges(options: Sequence[str]) -> bool:
    return any(
        o in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true") for o in options
    )


def _seccomp(service: Service) -> Seccomp:
    for option in service.security_opt:
        key, _, value = option.replace("=", ":", 1).partition(":")
        if key == "seccomp":
            if value == "unconfined":
                return Seccomp(SeccompMode.UNCONFINED)
            return Seccomp(SeccompMode.CUSTOM, value)
    return Seccomp()


def _namespaces(
    service: Service, join_netns: str | None = None, joins: dict[str, str] | None = None
) -> Namespaces:
    joins = joins or {}

    def mode(kind: str, value: str | None) -> Namespace:
        if kind in joins:
            return Namespace(NamespaceMode.JOIN, joins[kind])
        if value == "host":
            return Namespace(NamespaceMode.HOST)
        if kind == "ipc" and value == "shareable":
            return Namespace(NamespaceMode.SHAREABLE)
        return Namespace()

    net = mode("net", service.network_mode)
    if join_netns is not None:
        net = Namespace(NamespaceMode.JOIN, join_netns)
    return Namespaces(
        net=net,
        pid=mode("pid", service.pid),
        ipc=mode("ipc", service.ipc),
        uts=mode("uts", service.uts),
        cgroup=service.cgroup != "host",
    )


def _signal_name(name: str) -> str:
    name = name.upper()
    if name.isdigit():
        return signal.Signals(int(name)).name
    return name if name.startswith("SIG") else f"SIG{name}"


def _log_options(service: Service | None) -> LogOptions:
    if service is None or service.logging is None or not service.logging.options:
        return LogOptions()
    return LogOptions.from_compose(dict(service.logging.options))


async def _read_all(fd: int, sink: Any) -> None:
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            await fdio.wait_readable(fd)
            continue
        except OSError:
            return
        if not data:
            return
        sink(data)


def window_size(sources: Sequence[int]) -> tuple[int, int] | None:
    """(rows, columns) of the first of ``sources`` that is a terminal with a size."""
    for fd in sources:
        try:
            rows, columns, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            continue
        if rows and columns:
            return rows, columns
    return None


def copy_window_size(sources: Sequence[int], master: int) -> tuple[int, int] | None:
    """Give the terminal ``master`` the size of the first of ``sources`` that is a terminal;
    returns that size (None: none of them is a terminal with a size)."""
    size = window_size(sources)
    if size is not None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    return size


WINDOW_POLL_SECONDS = 0.2


async def follow_window_size(sources: Sequence[int], master: int) -> None:
    """Keep ``master``'s size that of the caller's terminal (its first terminal among
    ``sources``): the caller's window is resized in another process, whose SIGWINCH never
    reaches us, but its size can be read from the descriptor it passed. Polled; the kernel
    signals the container's foreground process group on each change. Runs until cancelled."""
    last = copy_window_size(sources, master)
    if last is None:
        return
    while True:
        await anyio.sleep(WINDOW_POLL_SECONDS)
        now = window_size(sources)
        if now is None:
            return  # the caller's terminal went away
        if now != last:
            last = copy_window_size(sources, master)


async def _shuttle(source: int, sink: int) -> None:
    """Copy bytes from ``source`` to ``sink`` until end of file (or EIO: a terminal's master end
    once its process is gone). Neither descriptor's blocking mode is changed: the caller's are
    shared with its shell."""
    while True:
        await fdio.wait_readable(source)
        try:
            data = os.read(source, 65536)
        except BlockingIOError:
            continue
        except OSError:
            return
        if not data:
            return
        while data:
            await fdio.wait_writable(sink)
            try:
                written = os.write(sink, data)
            except BlockingIOError:
                continue
            except OSError:
                return
            data = data[written:]
