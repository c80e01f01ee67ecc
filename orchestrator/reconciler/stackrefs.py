"""What a service refers to at the project level, resolved for the runtime adapter.

Owned here: :class:`ServiceRefs` (the service's ``secrets`` and ``configs`` as :class:`FileMount`
with their content source, owner and mode; its named volumes as :class:`VolumeRef` with their real
name, ``external`` flag and ``driver_opts`` bind device; and the problems that must fail ``up``
for this service), :func:`resolve_refs` which builds them from the model ``Stack`` (called by
``reconciler.desired``), and :func:`write_file_mounts` which materialises secrets and configs
below a container's directory with their ownership and mode (called by the adapter at start).

The refs travel inside the model ``Service`` under the :data:`REFS_KEY` extension, so every
copy of the service the reconciler makes (``run`` replaces a few fields) keeps them.

Docker Compose's rules: a secret appears at ``/run/secrets/<source>`` and a config at
``/<source>`` unless ``target`` says otherwise (relative targets are taken below those); uid and
gid default to 0 and the mode to 0444 for ``environment`` (the variable's value when the project
was loaded) and ``content``; a ``file`` (read when the container starts) keeps its own owner and
mode unless the entry sets them (Docker Compose bind-mounts such a file and ignores ``uid``,
``gid`` and ``mode`` with a warning; orc honours them).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.errors import PermanentError
from orchestrator.model import Service, Stack
from orchestrator.model.stack import FileObject
from orchestrator.runtime.process.spec import BindMount

REFS_KEY = "x-orc-refs"
DEFAULT_FILE_MODE = 0o444

FileKind = Literal["secret", "config"]


@dataclass(frozen=True)
class FileMount:
    """One secret or config as the container sees it; exactly one of ``file`` / ``content``.
    ``uid``, ``gid``, ``mode`` None: as the file has them, or 0, 0 and 0444 for ``content``."""

    kind: FileKind
    source: str
    target: str
    file: str | None = None
    content: str | None = None
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None


@dataclass(frozen=True)
class VolumeRef:
    """A named volume a service mounts: ``name`` is the real name (``<project>_<key>`` unless
    ``name:`` says otherwise); ``device`` is set for ``driver_opts`` ``type: none, o: bind``."""

    key: str
    name: str
    external: bool = False
    device: str | None = None


@dataclass(frozen=True)
class ServiceRefs:
    files: tuple[FileMount, ...] = ()
    volumes: tuple[VolumeRef, ...] = ()
    problems: tuple[str, ...] = ()

    def volume(self, key: str) -> VolumeRef | None:
        return next((v for v in self.volumes if v.key == key), None)


def refs_of(service: Service) -> ServiceRefs:
    """The refs :func:`resolve_refs` attached to ``service`` (empty when none were)."""
    refs = service.extensions.get(REFS_KEY)
    return refs if isinstance(refs, ServiceRefs) else ServiceRefs()


def resolve_refs(stack: Stack, service: Service, environment: Mapping[str, str]) -> ServiceRefs:
    problems: list[str] = [
        f"service {service.name}: orc does not support {key!r} (remove it or run this service elsewhere)"
        for key in [*service.unsupported, *unhonoured_keys(service)]
    ]
    files: list[FileMount] = []
    for kind, refs, objects in (
        ("secret", service.secrets, stack.secrets),
        ("config", service.configs, stack.configs),
    ):
        for ref in refs:
            obj = objects.get(ref.source)
            if obj is None:
                problems.append(f"service {service.name}: {kind} {ref.source!r} is not defined")
                continue
            file_mount, problem = _file_mount(service.name, kind, ref, obj, environment)  # type: ignore[arg-type]
            if problem:
                problems.append(problem)
            elif file_mount is not None:
                files.append(file_mount)
    volumes: list[VolumeRef] = []
    for mount in service.volumes:
        if mount.type != "volume" or not mount.source:
            continue
        volume = stack.volumes.get(mount.source)
        if volume is None:
            problems.append(f"service {service.name}: volume {mount.source!r} is not defined")
            continue
        device = None
        if volume.driver not in (None, "", "local"):
            problems.append(
                f"service {service.name}: volume {mount.source!r} uses driver {volume.driver!r}"
                " (orc has only the local driver)"
            )
        opts = dict(volume.driver_opts)
        if opts:
            if (
                opts.get("type") == "none"
                and "bind" in (opts.get("o") or "").split(",")
                and opts.get("device")
            ):
                device = opts["device"]
            else:
                problems.append(
                    f"service {service.name}: volume {mount.source!r}: driver_opts {opts} are not supported"
                    " (only type: none, o: bind, device: DIR)"
                )
        volumes.append(VolumeRef(mount.source, volume.name, volume.external, device))
    return ServiceRefs(tuple(files), tuple(volumes), tuple(problems))


_CONFINEMENT_OFF = ("apparmor=unconfined", "apparmor:unconfined", "label=disable", "label:disable")


def unhonoured_keys(service: Service) -> list[str]:
    """Keys the model carries but orc's runtime cannot apply, as dotted paths (set ones only)."""
    found: list[str] = []
    if service.userns_mode not in (None, "", "host"):
        found.append("userns_mode")
    if service.runtime not in (None, "", "runc"):
        found.append("runtime")
    for key in ("cgroup_parent", "cpu_rt_runtime", "cpu_rt_period"):
        if getattr(service, key) is not None:
            found.append(key)
    for key in ("storage_opt", "device_cgroup_rules", "external_links"):
        if getattr(service, key):
            found.append(key)
    if service.oom_kill_disable:
        found.append("oom_kill_disable")
    blkio = service.blkio_config
    if blkio is not None:
        for key in (
            "weight_device",
            "device_read_bps",
            "device_read_iops",
            "device_write_bps",
            "device_write_iops",
        ):
            if getattr(blkio, key):
                found.append(f"blkio_config.{key}")
    deploy = service.deploy
    for part in ("limits", "reservations"):
        resources = getattr(deploy, part) if deploy is not None else None
        if resources is not None and resources.devices:
            found.append(f"deploy.resources.{part}.devices")
    if any(link.alias != link.service for link in service.links):
        found.append("links (an alias other than the service name)")
    for option in service.security_opt:
        key = option.replace("=", ":", 1).partition(":")[0]
        if key in ("no-new-privileges", "seccomp") or option in _CONFINEMENT_OFF:
            continue
        found.append(f"security_opt {option}")
    for mount in (*service.volumes, *service.tmpfs):
        if mount.type not in ("bind", "volume", "tmpfs"):
            found.append(f"volumes type {mount.type}")
    return found


def _file_mount(
    service: str, kind: FileKind, ref: object, obj: FileObject, environment: Mapping[str, str]
) -> tuple[FileMount | None, str | None]:
    from orchestrator.model.service import FileRef

    assert isinstance(ref, FileRef)
    where = f"service {service}: {kind} {ref.source!r}"
    if obj.external:
        return None, f"{where} is external (orc has no secret or config store)"
    try:
        uid = int(ref.uid) if ref.uid else None
        gid = int(ref.gid) if ref.gid else None
    except ValueError:
        return None, f"{where}: uid and gid must be numbers (got {ref.uid!r}, {ref.gid!r})"
    common = {
        "kind": kind,
        "source": ref.source,
        "target": ref.container_path(kind),
        "uid": uid,
        "gid": gid,
        "mode": ref.mode,
    }
    if obj.file is not None:
        return FileMount(file=obj.file, **common), None  # type: ignore[arg-type]
    if obj.environment is not None:
        value = environment.get(obj.environment)
        if value is None:
            return None, f"{where}: environment variable {obj.environment} is not set"
        return FileMount(content=value, **common), None  # type: ignore[arg-type]
    if obj.content is not None:
        return FileMount(content=obj.content, **common), None  # type: ignore[arg-type]
    return None, f"{where} has no file, environment or content"


def write_file_mounts(directory: Path, files: tuple[FileMount, ...]) -> list[BindMount]:
    """Write each secret and config below ``directory`` owned and moded as asked; the read-only
    bind mounts that show them in the container. Rewritten on every start (a changed ``file``
    shows up after a restart, as with Docker Compose's copy at container start)."""
    mounts: list[BindMount] = []
    if not files:
        return mounts
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for index, item in enumerate(files):
        path = directory / f"{index}-{item.kind}-{item.source}"
        uid, gid, mode = item.uid, item.gid, item.mode
        if item.file is not None:
            try:
                data = Path(item.file).read_bytes()
                info = os.stat(item.file)
            except OSError as exc:
                raise PermanentError(
                    f"{item.kind} {item.source}: cannot read {item.file}: {exc.strerror}"
                ) from exc
            uid = info.st_uid if uid is None else uid
            gid = info.st_gid if gid is None else gid
            mode = stat.S_IMODE(info.st_mode) if mode is None else mode
        else:
            data = (item.content or "").encode()
        temporary = path.with_name(path.name + ".new")
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            out.write(data)
            os.fchown(out.fileno(), uid or 0, gid or 0)
            os.fchmod(out.fileno(), DEFAULT_FILE_MODE if mode is None else mode)
        os.replace(temporary, path)
        mounts.append(BindMount(str(path), item.target, read_only=True))
    return mounts
