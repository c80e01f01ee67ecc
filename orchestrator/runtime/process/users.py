"""Resolve a container ``user`` string against the container's own /etc/passwd and /etc/group.

Pure: takes the two files' text (None when missing). Called by the start sequence after pivot_root
and by exec. Semantics follow Docker: ``name|uid[:group|gid]``; a numeric uid or gid need not exist;
a name must. Without an explicit group the primary gid comes from passwd and the supplementary
groups are the /etc/group entries listing the user; ``additional_groups`` (``group_add``) are
appended either way. HOME comes from passwd, or ``/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.errors import PermanentError


@dataclass(frozen=True)
class ResolvedUser:
    """A ``user:`` value resolved against the container's passwd and group files."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


@dataclass(frozen=True)
class _PasswdEntry:
    """One line of an /etc/passwd file."""

    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class _GroupEntry:
    """One line of an /etc/group file."""

    name: str
    gid: int
    members: tuple[str, ...]


def _parse_passwd(text: str | None) -> list[_PasswdEntry]:
    entries = []
    for line in (text or "").splitlines():
        parts = line.strip().split(":")
        if len(parts) < 7 or line.startswith("#"):
            continue
        try:
            entries.append(_PasswdEntry(parts[0], int(parts[2]), int(parts[3]), parts[5]))
        except ValueError:
            continue
    return entries


def _parse_group(text: str | None) -> list[_GroupEntry]:
    entries = []
    for line in (text or "").splitlines():
        parts = line.strip().split(":")
        if len(parts) < 4 or line.startswith("#"):
            continue
        try:
            members = tuple(m for m in parts[3].split(",") if m)
            entries.append(_GroupEntry(parts[0], int(parts[2]), members))
        except ValueError:
            continue
    return entries


def _find_group(spec: str, groups: list[_GroupEntry]) -> int:
    if spec.isdigit():
        return int(spec)
    for entry in groups:
        if entry.name == spec:
            return entry.gid
    raise PermanentError(f"unable to find group {spec}: no matching entries in group file")


def resolve_user(
    user: str,
    additional_groups: tuple[str, ...] | list[str],
    passwd_text: str | None,
    group_text: str | None,
) -> ResolvedUser:
    """Resolve ``user`` (``"tester"``, ``"1000:2000"``, ``"tester:extra"``) in the container's files."""
    user_part, _, group_part = (user or "0").partition(":")
    user_part = user_part or "0"
    passwd = _parse_passwd(passwd_text)
    groups = _parse_group(group_text)
    match: _PasswdEntry | None = None
    for entry in passwd:
        if (user_part.isdigit() and entry.uid == int(user_part)) or entry.name == user_part:
            match = entry
            break
    if match is None:
        if not user_part.isdigit():
            raise PermanentError(f"unable to find user {user_part}: no matching entries in passwd file")
        uid, gid, home, name = int(user_part), 0, "/", ""
    else:
        uid, gid, home, name = match.uid, match.gid, match.home, match.name
    supplementary: list[int] = []
    if group_part:
        gid = _find_group(group_part, groups)
    elif name:
        supplementary = [g.gid for g in groups if name in g.members]
    for extra in additional_groups:
        extra_gid = _find_group(extra, groups)
        if extra_gid not in supplementary:
            supplementary.append(extra_gid)
    return ResolvedUser(uid=uid, gid=gid, groups=tuple(supplementary), home=home or "/")
