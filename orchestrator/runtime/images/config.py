"""The image configuration a container is made from (the OCI image config's ``config`` section).

Owned here: :class:`ImageConfig` and :class:`ImageHealthcheck`, parsed from the config blob by
:func:`parse_image_config`. The store keeps the raw blob; the reconciler reads these fields to fill
in what a service does not say (command, entrypoint, env, user, working dir, healthcheck, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import PermanentError


class ImageConfigError(PermanentError):
    """An image config blob that is not a valid OCI/Docker image config."""


@dataclass(frozen=True)
class ImageHealthcheck:
    """``HEALTHCHECK`` as stored in the image: durations in nanoseconds, as Docker stores them."""

    test: tuple[str, ...]
    interval_ns: int = 0
    timeout_ns: int = 0
    start_period_ns: int = 0
    start_interval_ns: int = 0
    retries: int = 0


def _strings(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    raise ImageConfigError(f"expected a list of strings, got {type(value).__name__}")


@dataclass(frozen=True)
class ImageConfig:
    """What an image says about running it. ``None`` means the image does not set it."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    healthcheck: ImageHealthcheck | None = None
    stop_signal: str | None = None
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    os: str = "linux"
    architecture: str = ""
    variant: str | None = None
    diff_ids: tuple[str, ...] = ()
    created: str | None = None

    def env_dict(self) -> dict[str, str]:
        """The environment as a mapping (later entries win, a bare ``NAME`` maps to ``""``)."""
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out


def parse_image_config(data: bytes) -> ImageConfig:
    """Parse an image config blob (OCI ``application/vnd.oci.image.config.v1+json`` or Docker's)."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImageConfigError(f"image config is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ImageConfigError("image config is not a JSON object")
    cfg = doc.get("config") or {}
    if not isinstance(cfg, dict):
        raise ImageConfigError("image config 'config' is not an object")
    rootfs = doc.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise ImageConfigError("image config has no rootfs.diff_ids list")
    health = None
    raw_health = cfg.get("Healthcheck")
    if isinstance(raw_health, dict) and raw_health.get("Test"):
        health = ImageHealthcheck(
            test=_strings(raw_health.get("Test")) or (),
            interval_ns=int(raw_health.get("Interval") or 0),
            timeout_ns=int(raw_health.get("Timeout") or 0),
            start_period_ns=int(raw_health.get("StartPeriod") or 0),
            start_interval_ns=int(raw_health.get("StartInterval") or 0),
            retries=int(raw_health.get("Retries") or 0),
        )
    return ImageConfig(
        entrypoint=_strings(cfg.get("Entrypoint")),
        cmd=_strings(cfg.get("Cmd")),
        env=_strings(cfg.get("Env")) or (),
        working_dir=str(cfg.get("WorkingDir") or ""),
        user=str(cfg.get("User") or ""),
        exposed_ports=tuple(sorted((cfg.get("ExposedPorts") or {}).keys())),
        volumes=tuple(sorted((cfg.get("Volumes") or {}).keys())),
        healthcheck=health,
        stop_signal=cfg.get("StopSignal") or None,
        labels={str(k): str(v) for k, v in (cfg.get("Labels") or {}).items()},
        os=str(doc.get("os") or "linux"),
        architecture=str(doc.get("architecture") or ""),
        variant=doc.get("variant") or None,
        diff_ids=tuple(str(d) for d in diff_ids),
        created=doc.get("created"),
    )
