"""Events: every transition the reconciler makes, published to whoever listens.

Owned here: :class:`Event` (with its JSON-lines form, the shape ``docker compose events --json``
prints) and :class:`EventBus` (anyio memory streams, one per subscriber; a subscriber that falls
``buffer`` events behind loses the oldest rather than stalling the reconciler, and is told how
many it missed). The executor and supervisor publish; ``orc events``, the progress display and
the control socket subscribe.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from orchestrator.timestamps import format_micros


@dataclass(frozen=True)
class Event:
    """``type`` is container, network, volume, image or project; ``action`` what happened
    (create, start, die, health_status, restart, destroy, pull, ...)."""

    time: float
    type: str
    action: str
    name: str
    service: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        stamp = format_micros(self.time)
        data: dict[str, Any] = {"time": stamp, "type": self.type, "action": self.action, "id": self.name}
        if self.service is not None:
            data["service"] = self.service
        data["attributes"] = dict(sorted(self.attributes.items()))
        return data

    def to_json_line(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":")) + "\n"

    def to_text(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(self.attributes.items()))
        stamp = format_micros(self.time)
        return f"{stamp} {self.type} {self.action} {self.name}" + (f" ({attrs})" if attrs else "")


class _Subscriber:
    def __init__(self, buffer: int) -> None:
        self.send: MemoryObjectSendStream[Event]
        self.receive: MemoryObjectReceiveStream[Event]
        self.send, self.receive = anyio.create_memory_object_stream[Event](buffer)
        self.dropped = 0


class EventBus:
    """Fan-out of events to subscribers; :meth:`publish` never blocks."""

    def __init__(self, buffer: int = 1024) -> None:
        self._buffer = buffer
        self._subscribers: list[_Subscriber] = []
        self.history: list[Event] = []
        self.keep_history = False

    def publish(self, event: Event) -> None:
        if self.keep_history:
            self.history.append(event)
        for subscriber in list(self._subscribers):
            try:
                subscriber.send.send_nowait(event)
            except anyio.WouldBlock:
                # Drop the oldest queued event so the newest (the current state) gets through.
                try:
                    subscriber.receive.receive_nowait()
                    subscriber.dropped += 1
                    subscriber.send.send_nowait(event)
                except (anyio.WouldBlock, anyio.EndOfStream):
                    subscriber.dropped += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(subscriber)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[MemoryObjectReceiveStream[Event]]:
        """Receive every event published while the context is open."""
        subscriber = _Subscriber(self._buffer)
        self._subscribers.append(subscriber)
        try:
            yield subscriber.receive
        finally:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)
            subscriber.send.close()
            subscriber.receive.close()

    def end(self, receive: MemoryObjectReceiveStream[Event]) -> None:
        """Stop publishing to the subscription ``receive``: its reader gets what is queued, then
        the end of the stream (so nothing published before this call is lost to it)."""
        for subscriber in list(self._subscribers):
            if subscriber.receive is receive:
                self._subscribers.remove(subscriber)
                subscriber.send.close()

    def dropped(self) -> int:
        return sum(s.dropped for s in self._subscribers)
