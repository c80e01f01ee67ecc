"""What exists, read without a supervisor: for ``orc plan`` and ``up --dry-run``.

Owned here: :func:`observe_offline`, the planner's ObservedState built from the state files
(containers whose recorded process is gone count as exited), the project's recorded networks and
volumes, and the local image store (``x-orc`` rootfs directories count as present images).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.daemon.handle import ProjectHandle
from orchestrator.planner.observed import ObservedContainer, ObservedState
from orchestrator.reconciler.desired import ROOTFS_PREFIX
from orchestrator.reconciler.project import ProjectSpec


def observe_offline(handle: ProjectHandle, spec: ProjectSpec | None) -> ObservedState:
    containers = tuple(
        ObservedContainer(
            name=r.name,
            service=r.service,
            number=r.number,
            config_hash=r.config_hash,
            status=r.status,
            config=r.config,
            image=r.image,
            image_digest=r.image_digest,
            exit_code=r.exit_code,
            one_off=r.one_off,
            health=r.health,
        )
        for r in handle.containers()
    )
    record = handle.store.load_project(handle.name)
    networks = frozenset(n.name for n in record.networks) if record else frozenset()
    volumes = frozenset(record.volumes) if record else frozenset()
    images = _local_images(handle, spec) if spec is not None else {}
    return ObservedState(containers, networks, volumes, images)


def _local_images(handle: ProjectHandle, spec: ProjectSpec) -> dict[str, str]:
    found: dict[str, str] = {}
    store = None
    for service in spec.desired.services:
        reference = service.image
        if reference.startswith(ROOTFS_PREFIX):
            if Path(reference[len(ROOTFS_PREFIX) :]).is_dir():
                found[reference] = reference
            continue
        if store is None:
            from orchestrator.runtime.images.driver import LocalImages
            from orchestrator.runtime.images.store import ImageStore

            store = LocalImages(ImageStore(handle.roots.lib / "images"))
        image = store.get(reference)
        if image is not None:
            found[reference] = str(image.id)
    return found
