"""PURE. A loaded Compose project (:class:`Project`), what :func:`orchestrator.stack.loader.load`
returns.

Apart from the loader so that a project can be rebuilt (``cli.loadcache``, unpickling a project
loaded earlier from the same files) without importing the loader, YAML and the schema: this
module imports only what the class itself needs, the rest when a method asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import Problem, StackError


@dataclass
class Project:
    """A loaded project: the canonical document and what it was made from.

    ``document`` is exactly what ``docker compose config --format json`` prints, as plain data;
    ``config_hashes`` maps each enabled service to its Compose config hash.
    """

    name: str
    working_dir: str
    files: list[str]
    environment: dict[str, str]
    document: dict[str, Any]
    warnings: list[str]
    profiles: list[str]
    disabled_services: dict[str, Any]
    config_hashes: dict[str, str] = field(default_factory=dict)
    records: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    _stack: Any = None
    _locator: Any = None

    def locate(self, error: StackError) -> StackError:
        """``error`` with file:line:col added to problems that only name a dotted path
        (for checks run after loading, such as the dependency graph's)."""
        return self._locator.locate(error) if self._locator is not None else error

    @property
    def stack(self) -> Any:
        """The document bound into frozen model records (:func:`orchestrator.stack.bind.bind`),
        built on first use: ``orc config`` rarely needs it and the model is costly to import."""
        if self._stack is None:
            from orchestrator.stack.bind import bind

            self._stack = bind(
                self.document,
                config_hashes=self.config_hashes,
                working_dir=self.working_dir,
                compose_files=tuple(self.files),
            )
        return self._stack

    def has_dependencies(self) -> bool:
        """Whether any enabled service depends on another (normalisation made links,
        ``network_mode: service:x`` and ``volumes_from`` explicit in ``depends_on``)."""
        return any(s.get("depends_on") for s in self.records["services"].values())

    def json_text(self) -> str:
        from orchestrator.stack import render
        from orchestrator.stack.loader import encode_project

        return render.to_json(encode_project(self.records, yaml_mode=False))

    def yaml_text(self) -> str:
        from orchestrator.stack.loader import encode_project
        from orchestrator.stack.yamlout import dump_yaml

        return dump_yaml(encode_project(self.records, yaml_mode=True))


class SourcePositions:
    """Where each dotted path of the loaded documents sits in its file (``positions``: per
    document, its file and dotted path → (line, column)), so that problems found after loading,
    which know only a dotted path, get a file:line:col. Plain data: it is kept with a
    project in ``cli.loadcache``."""

    def __init__(self, positions: list[tuple[str, dict[str, tuple[int, int]]]] | None = None) -> None:
        self.positions: list[tuple[str, dict[str, tuple[int, int]]]] = (
            positions if positions is not None else []
        )

    def locate(self, error: StackError) -> StackError:
        """Give problems that only know their dotted path a file:line:col from the sources."""
        fixed: list[Problem] = []
        changed = False
        for problem in error.problems:
            if problem.path and problem.message.startswith((f"{problem.path}: ", f"{problem.path} ")):
                # the location is printed in front already
                message = problem.message[len(problem.path) :].lstrip(": ")
                problem = Problem(message, problem.file, problem.line, problem.column, problem.path)
                changed = True
            if problem.line is None and problem.path:
                found = self._find(problem.path, problem.file)
                if found:
                    file, (line, col) = found
                    problem = Problem(problem.message, file=file, line=line, column=col, path=problem.path)
                    changed = True
            fixed.append(problem)
        if not changed:
            return error
        located = StackError(fixed)
        located.__cause__ = error.__cause__
        return located

    def _find(self, dotted: str, prefer: str | None) -> tuple[str, tuple[int, int]] | None:
        candidates = [dotted]
        text = dotted
        while True:
            cut = max(text.rfind("."), text.rfind("["))
            if cut <= 0:
                break
            text = text[:cut]
            candidates.append(text)
        for candidate in candidates:
            for file, positions in reversed(self.positions):
                if prefer and file != prefer:
                    continue
                if candidate in positions:
                    return file, positions[candidate]
            if prefer:
                for file, positions in reversed(self.positions):
                    if candidate in positions:
                        return file, positions[candidate]
        return None
