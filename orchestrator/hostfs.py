"""The real-disk FileSource (see :mod:`orchestrator.stack.source`).

Owns the only place where the Compose loader's file reads touch the disk. Built by
``orchestrator.cli.project`` and handed to :func:`orchestrator.stack.loader.load`; kept outside
``stack/`` so the loader stays pure.
"""

from __future__ import annotations

import os


class HostFileSource:
    """Reads files from the host filesystem by absolute path."""

    def read_text(self, path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read()

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def list_dir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def real_path(self, path: str) -> str:
        return os.path.realpath(path)
