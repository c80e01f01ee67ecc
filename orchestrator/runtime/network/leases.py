"""The network driver's state file: IPAM book, networks made, attachments made.

One JSON file (``<state root>/network/state.json``) shared by every project under the same root,
read and rewritten under an exclusive ``flock`` on a sibling lock file, written atomically
(``orchestrator.swapfile``: the new text renamed over the old; no fsync, see ``_save``). Holding
the lock across "read, allocate, write" is what keeps two supervisors from leasing the same
subnet or address. ``MemoryLeaseStore`` is the in-memory twin for unit
tests. Called by ``driver.NetworkDriver``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from orchestrator.errors import PermanentError
from orchestrator.swapfile import replace_contents

from .ipam import IpamBook
from .spec import Attachment, NetworkInfo

_COMPACT = (",", ":")
T = TypeVar("T")


@dataclass
class NetworkState:
    ipam: IpamBook = field(default_factory=IpamBook)
    networks: dict[str, NetworkInfo] = field(default_factory=dict)
    attachments: dict[str, list[Attachment]] = field(default_factory=dict)  # container -> list
    dnat_tables: dict[str, str] = field(default_factory=dict)  # container -> nft table

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "ipam": self.ipam.to_json(),
            "networks": {k: v.to_json() for k, v in sorted(self.networks.items())},
            "attachments": {k: [a.to_json() for a in v] for k, v in sorted(self.attachments.items()) if v},
            "dnat_tables": dict(sorted(self.dnat_tables.items())),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkState:
        return cls(
            ipam=IpamBook.from_json(data.get("ipam", {})),
            networks={k: NetworkInfo.from_json(v) for k, v in data.get("networks", {}).items()},
            attachments={
                k: [Attachment.from_json(a) for a in v] for k, v in data.get("attachments", {}).items()
            },
            dnat_tables=dict(data.get("dnat_tables", {})),
        )


class LeaseStore(Protocol):
    def transaction(self) -> contextlib.AbstractContextManager[NetworkState]:
        """Lock, load, yield the state for changes, save it if the block did not raise, unlock."""
        ...

    def read(self) -> NetworkState:
        """A snapshot without taking the lock for long (for listings)."""
        ...

    def inspect(self, look: Callable[[NetworkState], T]) -> T:
        """``look(state)`` under the lock; ``look`` must not change the state (nothing is saved)."""
        ...


class FileLeaseStore:
    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / "network"
        self.path = self.dir / "state.json"
        self.lock_path = self.dir / "state.lock"
        self._thread_lock = threading.Lock()
        # The state this process wrote last, with its file text: a transaction that finds the
        # file unchanged (same text) takes it instead of parsing the file again. Parsing grew
        # with every attachment, so a burst of connects cost O(n²).
        self._last: tuple[str, NetworkState] | None = None
        self._texts: dict[int, tuple[Attachment, str]] = {}  # by id(): the attachment and its JSON
        self._entries: dict[str, tuple[tuple[Attachment, ...], str]] = {}  # by container

    def _load(self) -> NetworkState:
        return self._load_text()[0]

    def _load_text(self) -> tuple[NetworkState, str | None]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return NetworkState(), None
        try:
            return NetworkState.from_json(json.loads(text)), text
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentError(f"network state file {self.path} is corrupt: {exc}") from exc

    def _load_for_change(self) -> tuple[NetworkState, str | None]:
        """Like ``_load_text``, reusing the last state written here while the file still holds
        exactly its text. The state is handed out to be changed: it is kept again only once it
        is saved."""
        last, self._last = self._last, None
        if last is not None:
            try:
                text = self.path.read_text()
            except FileNotFoundError:
                text = None
            if text == last[0]:
                return last[1], text
        return self._load_text()

    def _encode(self, state: NetworkState) -> str:
        """``json.dumps(state.to_json(), separators=(",", ":"))``, with the text of each
        attachment encoded by an earlier save reused (attachments are immutable): every save
        writes the whole file, so encoding every attachment each time made a burst of n
        connects O(n²) (~0.5 ms a save at 100 containers)."""
        known, self._texts = self._texts, {}
        known_entries, self._entries = self._entries, {}

        def text(attachment: Attachment) -> str:
            hit = known.get(id(attachment))
            if hit is None or hit[0] is not attachment:
                hit = (attachment, json.dumps(attachment.to_json(), separators=_COMPACT))
            self._texts[id(attachment)] = hit
            return hit[1]

        def entry(name: str, listed: list[Attachment]) -> str:
            # A container's whole ``"name":[...]`` entry, kept while its list holds the same
            # attachments: the save after each connect rewrites every other entry unchanged.
            hit = known_entries.get(name)
            if (
                hit is None
                or len(hit[0]) != len(listed)
                or any(a is not b for a, b in zip(hit[0], listed, strict=True))
            ):
                hit = (tuple(listed), f"{json.dumps(name)}:[{','.join(map(text, listed))}]")
            else:
                for attachment in listed:  # kept for when this list changes
                    if (kept := known.get(id(attachment))) is not None:
                        self._texts[id(attachment)] = kept
            self._entries[name] = hit
            return hit[1]

        head = json.dumps(
            {
                "version": 1,
                "ipam": state.ipam.to_json(),
                "networks": {k: v.to_json() for k, v in sorted(state.networks.items())},
            },
            separators=_COMPACT,
        )
        attachments = ",".join(
            entry(name, listed) for name, listed in sorted(state.attachments.items()) if listed
        )
        tables = json.dumps(dict(sorted(state.dnat_tables.items())), separators=_COMPACT)
        return f'{head[:-1]},"attachments":{{{attachments}}},"dnat_tables":{tables}}}'

    def _save(self, state: NetworkState, previous: str | None = None) -> None:
        payload = self._encode(state)
        if payload == previous:
            # Nothing changed: no rewrite (each is a write and two renames).
            self._last = (payload, state)
            return
        # No fsync: the rename keeps readers and crashed writers from ever seeing a torn file,
        # and what this file describes (links, leases of live containers) dies with the kernel
        # anyway. An fsync here cost ~8 ms per connect on ext4, most of the setup budget. No new
        # inode per save either (``orchestrator.swapfile``); the lock makes this the only writer.
        replace_contents(self.path, payload.encode(), mode=0o644)
        self._last = (payload, state)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[NetworkState]:
        self.dir.mkdir(parents=True, exist_ok=True)
        # flock is per open file description, so threads of one process need their own guard too.
        with self._thread_lock, open(self.lock_path, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                state, text = self._load_for_change()
                yield state
                self._save(state, text)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def inspect(self, look: Callable[[NetworkState], T]) -> T:
        # Like a transaction that changes nothing, without encoding the state to find that out;
        # the state this process wrote last is looked at instead of parsing the file again.
        with self._thread_lock, open(self.lock_path, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_SH)
            try:
                state, text = self._load_for_change()
                try:
                    return look(state)
                finally:
                    if text is not None:
                        self._last = (text, state)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def read(self) -> NetworkState:
        if not self.path.exists():
            return NetworkState()
        # a shared lock: readers never see a half-made change (writers replace the file by
        # rename anyway) and never write
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_SH)
            try:
                return self._load()
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


class MemoryLeaseStore:
    """In-memory twin: same transaction semantics (changes are dropped if the block raises)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = NetworkState().to_json()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[NetworkState]:
        state = NetworkState.from_json(json.loads(json.dumps(self._data)))
        yield state
        self._data = json.loads(json.dumps(state.to_json()))

    def read(self) -> NetworkState:
        return NetworkState.from_json(json.loads(json.dumps(self._data)))

    def inspect(self, look: Callable[[NetworkState], T]) -> T:
        return look(self.read())
