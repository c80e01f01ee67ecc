"""The error tree shared by every layer.

Two kinds matter to the reconcile loop: a *temporary* error may succeed if retried after
``retry_after`` seconds; a *permanent* one will not until something changes (the file, the host).
Drivers map OS and library exceptions into this tree at their boundary (``raise ... from exc``);
the CLI turns any ``OrcError`` into one line on stderr and ``exit_code``.
"""

from __future__ import annotations

from dataclasses import dataclass


class OrcError(Exception):
    """Base of every error orc raises on purpose. ``str(err)`` is the one line a user sees."""

    exit_code: int = 1


class PermanentError(OrcError):
    """Retrying will not help until the input or the host changes."""


class TemporaryError(OrcError):
    """May succeed when retried after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UsageError(PermanentError):
    """Bad command-line usage: wrong flags, unknown service names, conflicting options."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's files: where it is and what is wrong.

    ``file`` and ``line``/``column`` (1-based) may be unknown for problems found after merging;
    ``path`` is the dotted path inside the document (``services.web.ports[0]``).
    """

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
        parts = [p for p in (where, self.path) if p]
        prefix = " ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class StackError(PermanentError):
    """The Compose files cannot be loaded. Lists every problem found, each with its location."""

    exit_code = 15

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class NotFoundError(PermanentError):
    """A named object (service, container, network, image, file) does not exist."""


class ConflictError(PermanentError):
    """The request conflicts with the current state (name in use, port taken, wrong state)."""
