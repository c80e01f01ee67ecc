"""How a service's settings combine with its image's config, as Docker's daemon merges them.

The images driver hands the reconciler an image config (Entrypoint, Cmd, Env, WorkingDir, User,
StopSignal, Healthcheck); these pure functions give the values a container actually runs with,
so the reconciler passes finished values to the process driver. The rules follow moby's
``daemon.merge`` and container defaults:

* argv: a service ``entrypoint`` that is non-empty replaces the image's and drops the image's
  Cmd; otherwise the image's Cmd is used when ``command`` is empty or unset, and the image's
  Entrypoint when ``entrypoint`` is unset (an explicit ``entrypoint: []`` clears it). So
  ``command: []`` alone does *not* clear the image's Cmd, as in Docker.
* environment: the service's variables (declared-but-unset ones left out), then every image
  variable the service did not set.
* healthcheck: the service's fields, each falling back to the image's when empty or zero.
* working dir ``/``, user root and ``SIGTERM`` when neither side sets them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from orchestrator.model.service import Healthcheck, Service

DEFAULT_STOP_SIGNAL = "SIGTERM"


def argv(
    service: Service, image_entrypoint: Sequence[str] | None, image_cmd: Sequence[str] | None
) -> list[str]:
    """The process's argv; empty when neither the service nor the image names a program."""
    entrypoint = service.entrypoint
    command = service.command
    if not entrypoint:
        if not command:
            command = tuple(image_cmd or ())
        if entrypoint is None:
            entrypoint = tuple(image_entrypoint or ())
    return [*(entrypoint or ()), *(command or ())]


def environment(service: Service, image_env: Sequence[str]) -> dict[str, str]:
    """Service variables first, then the image's ``KEY=VALUE`` entries it did not override."""
    merged = service.container_environment()
    for entry in image_env:
        key, _, value = entry.partition("=")
        if key not in service.environment:
            merged.setdefault(key, value)
    return merged


def healthcheck(service: Service, image: Healthcheck | None) -> Healthcheck | None:
    """The health check to run, or None when there is none or it is disabled."""
    own = service.healthcheck
    if own is not None and own.disabled:
        return None
    if own is None:
        merged = image
    elif image is None:
        merged = own
    else:
        merged = replace(
            own,
            test=own.test or image.test,
            interval=own.interval or image.interval,
            timeout=own.timeout or image.timeout,
            start_period=own.start_period or image.start_period,
            start_interval=own.start_interval or image.start_interval,
            retries=own.retries or image.retries,
        )
    if merged is None or merged.disabled or not merged.test:
        return None
    return merged


def working_dir(service: Service, image_working_dir: str | None) -> str:
    return service.working_dir or image_working_dir or "/"


def user(service: Service, image_user: str | None) -> str:
    """``user[:group]`` to run as; empty means root."""
    return service.user or image_user or ""


def stop_signal(service: Service, image_stop_signal: str | None) -> str:
    return service.stop_signal or image_stop_signal or DEFAULT_STOP_SIGNAL
