"""The loaded project as it crosses the control socket, built without the reconciler's modules.

Owned here: :func:`document_payload`, called by the CLI (``cli.lifecycle.project_payload``) for
every verb that sends the project to its supervisor, which turns it back into a ``ProjectSpec``
with :func:`orchestrator.reconciler.desired.from_document`. It lives apart from ``desired`` so the
CLI does not import the planner, health checks, clocks and runtime specs just to send a document
(~80 ms of a CLI's start-up); it imports nothing beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def document_payload(project: Any) -> dict[str, Any]:
    """What ``from_document`` needs, from a loaded project (JSON-able)."""
    # Only the variables secrets and configs take their content from, read from the canonical
    # document: binding the model (``project.stack``) just for these names costs a CLI ~40 % of
    # its run time (the model's import and the bind).
    file_variables = {
        str(entry["environment"])
        for section in ("secrets", "configs")
        for entry in (_mapping(project.document.get(section))).values()
        if isinstance(entry, Mapping) and isinstance(entry.get("environment"), str) and entry["environment"]
    }
    return {
        "name": project.name,
        "working_dir": project.working_dir,
        "files": list(project.files),
        "document": project.document,
        "config_hashes": dict(project.config_hashes),
        "extensions": {
            name: record.get("#extensions") or {}
            for name, record in (project.records.get("services") or {}).items()
            if isinstance(record, Mapping)
        },
        "file_environment": {
            key: project.environment[key] for key in sorted(file_variables) if key in project.environment
        },
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
