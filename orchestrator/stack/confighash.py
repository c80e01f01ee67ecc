"""PURE. The per-service config hash Docker Compose stores on containers and prints with
``docker compose config --hash``.

Owns the exact recipe: the service record minus ``build``, ``pull_policy``, ``scale``,
``deploy.replicas``, ``depends_on`` and ``profiles``, marshalled as compact Go JSON (struct field
order, sorted maps, HTML-safe escaping), then SHA-256 in hex. ``up`` compares it with the label on
existing containers to decide whether to recreate. Called by :mod:`orchestrator.stack.loader`.
"""

from __future__ import annotations

from typing import Any

from orchestrator.hashing import sha256_hex
from orchestrator.stack import render


def service_config_hash(service: dict[str, Any]) -> str:
    """SHA-256 hex of the hash-relevant part of a decoded service record."""
    record = dict(service)
    for key in ("build", "pull_policy", "scale", "depends_on", "profiles"):
        record.pop(key, None)
    if record.get("deploy") is not None:
        deploy = dict(record["deploy"])
        deploy.pop("replicas", None)
        record["deploy"] = deploy
    text = render.to_json_compact(render.encode(record, "Service", yaml_mode=False))
    return sha256_hex(text.encode("utf-8", "surrogateescape"))
