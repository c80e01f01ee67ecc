"""``x-orc: {rootfs: host}``: a container whose userland is the host's own, read-only.

Owned here: the image reference such a service gets (``rootfs:host:<project dir>``), the skeleton
root it starts from, and the rewrite of a :class:`ContainerSpec` built by the kernel adapter:

* the root is an overlay whose lower layer is a skeleton directory (empty mount points, and the
  host's top-level symlinks such as ``/bin -> usr/bin`` copied as symlinks), so the container may
  write to its root without touching the host;
* the host's ``/usr``, ``/etc``, ``/opt`` and its top-level ``/bin``, ``/sbin``, ``/lib*`` (when
  they are real directories) are bound read-only;
* ``/tmp`` and ``/run`` are private tmpfs mounts, so nothing leaks between host and container;
* the project directory is bound read-write at its own path and is the default working directory,
  so ``python3 app.py`` runs the sources as they are on disk.

The process still gets its own pid, net, mount, uts and ipc namespaces and cgroups like any other
container; only the files come from the host. ``desired.image_reference`` asks
:func:`reference_for`; ``adapter.KernelRuntime`` asks :func:`is_host_reference` and :func:`adapt`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from orchestrator.runtime.process.spec import BindMount, ContainerSpec, Mount, OverlayRootfs, TmpfsMount

HOST_VALUE = "host"
HOST_REFERENCE_PREFIX = "rootfs:host:"
# Host directories bound read-only when they exist; top-level symlinks among them are recreated.
HOST_DIRECTORIES = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt")
PRIVATE_TMPFS = ("/tmp", "/run")
# Mount points the runtime and the bind mounts need in the skeleton.
SKELETON_DIRECTORIES = ("proc", "sys", "dev", "tmp", "run", "root", "home", "var", "var/tmp", "mnt")


def reference_for(project_directory: str) -> str:
    """The image reference of a host-rootfs service of the project in ``project_directory``."""
    return HOST_REFERENCE_PREFIX + os.path.normpath(project_directory)


def is_host_reference(reference: str) -> bool:
    return reference.startswith(HOST_REFERENCE_PREFIX)


def project_directory(reference: str) -> str:
    return reference[len(HOST_REFERENCE_PREFIX) :]


def ensure_skeleton(directory: Path, host_root: Path = Path("/")) -> Path:
    """Create (once) the skeleton lower layer in ``directory`` and return it.

    Built in a sibling directory and renamed into place, so concurrent starts never see half of one.
    """
    if directory.is_dir():
        return directory
    partial = directory.with_name(f"{directory.name}.{os.getpid()}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    for name in SKELETON_DIRECTORIES:
        (partial / name).mkdir(parents=True, exist_ok=True)
    (partial / "tmp").chmod(0o1777)
    (partial / "var" / "tmp").chmod(0o1777)
    for name in HOST_DIRECTORIES:
        host = host_root / name
        if host.is_symlink():
            (partial / name).symlink_to(os.readlink(host))
        elif host.is_dir():
            (partial / name).mkdir(exist_ok=True)
    try:
        partial.rename(directory)
    except OSError:
        if not directory.is_dir():
            raise
    return directory


def host_mounts(host_root: Path = Path("/")) -> list[Mount]:
    """Read-only binds of the host's userland directories (real directories only)."""
    mounts: list[Mount] = []
    for name in HOST_DIRECTORIES:
        host = host_root / name
        if host.is_dir() and not host.is_symlink():
            mounts.append(BindMount(str(host), "/" + name, read_only=True))
    mounts.extend(TmpfsMount(target) for target in PRIVATE_TMPFS)
    return mounts


def adapt(
    spec: ContainerSpec,
    reference: str,
    skeleton: Path,
    service_working_dir: str | None,
    host_root: Path = Path("/"),
) -> ContainerSpec:
    """``spec`` (built by the adapter as for a rootfs directory) turned into a host-rootfs container.

    The service's own mounts come after the host binds, so a service may still bind over them.
    """
    if not isinstance(spec.rootfs, OverlayRootfs):
        raise TypeError(f"container {spec.id}: expected an overlay root, got {type(spec.rootfs).__name__}")
    project = project_directory(reference)
    mounts = [*host_mounts(host_root), BindMount(project, project), *spec.mounts]
    process = spec.process
    if not service_working_dir:
        process = replace(process, cwd=project)
    return replace(
        spec,
        rootfs=replace(spec.rootfs, lower_dirs=(str(ensure_skeleton(skeleton, host_root)),)),
        mounts=tuple(mounts),
        process=process,
    )
