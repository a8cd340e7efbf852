"""Live updates: one poller per web process watches the audit log and fans new events out to
every open page (Server-Sent Events).

Why the audit log: every change to a mail or a draft writes an event in the same
transaction, whoever made it (the daemon in another process, the CLI, another agent), so
"newest event id" is a complete and cheap change counter on SQLite and PostgreSQL alike. One
``SELECT max(id)`` a second serves any number of pages; pages send the id they were
rendered at, so nothing that happened between render and subscribe is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from mailbot.errors import StoreError
from mailbot.store import AuditEvent
from mailbot.store.queue import Queue

log = logging.getLogger(__name__)

MAX_BATCH = 500
LOOK_BACK = 50
QUEUE_SIZE = 64             # batches a slow page may lag behind before it is told to reload


@dataclass(frozen=True, slots=True)
class Change:
    """One audit event, trimmed to what a page needs (no customer text)."""

    id: int
    mail_id: int
    draft_id: int | None
    action: str
    actor: str
    state: str | None

    @classmethod
    def of(cls, event: AuditEvent) -> Change:
        return cls(event.id, event.mail_id, event.draft_id, event.action, event.actor,
                   event.to_state.value if event.to_state else None)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "mail": self.mail_id, "draft": self.draft_id,
                "action": self.action, "actor": self.actor, "state": self.state}


# A batch of changes, or None: "you fell behind or the feed is closing; reload".
Batch = list[Change] | None


class _Recent:
    """The ids handed out lately, so a batch is never delivered twice (bounded)."""

    def __init__(self, size: int = 2000) -> None:
        self._order: deque[int] = deque()
        self._ids: set[int] = set()
        self._size = size

    def fresh(self, changes: list[Change]) -> list[Change]:
        out = [c for c in changes if c.id not in self._ids]
        for change in out:
            self._ids.add(change.id)
            self._order.append(change.id)
            if len(self._order) > self._size:
                self._ids.discard(self._order.popleft())
        return out


class _Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Batch] = asyncio.Queue(QUEUE_SIZE)
        self._recent = _Recent()

    def offer(self, changes: list[Change]) -> None:
        fresh = self._recent.fresh(changes)
        if fresh:
            _offer(self.queue, fresh)


class ChangeFeed:
    def __init__(self, queue: Queue, *, interval: float = 1.0) -> None:
        self._queue = queue
        self._interval = interval
        self._subscribers: set[_Subscription] = set()
        self._closed = asyncio.Event()
        self._last_id: int | None = None
        self._recent = _Recent()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def run(self) -> None:
        """Poll until ``close()``; database trouble is logged and waited out."""
        while not self._closed.is_set():
            try:
                changes = await asyncio.to_thread(self._poll)
            except StoreError as exc:
                log.warning("live updates paused: %s", exc)
                changes = []
            for subscription in list(self._subscribers):
                subscription.offer(changes)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self._interval)

    def close(self) -> None:
        """End the poller and every subscription (each page gets a last "reload")."""
        self._closed.set()
        for subscription in self._subscribers:
            _offer(subscription.queue, None)

    @contextlib.asynccontextmanager
    async def subscribe(self, after: int) -> AsyncIterator[asyncio.Queue[Batch]]:
        """A queue of batches of changes newer than event ``after`` (the id the page was
        rendered at): first what happened since then, then everything new, each once."""
        subscription = _Subscription()
        self._subscribers.add(subscription)
        try:
            # Registered first, then caught up, with no await in between: whatever the
            # poller publishes from now on reaches this page, and the catch-up covers
            # everything committed before. Duplicates are filtered by id.
            missed = self._queue.events_after(after, limit=MAX_BATCH)
            if len(missed) == MAX_BATCH:
                _offer(subscription.queue, None)
            else:
                subscription.offer([Change.of(e) for e in missed])
            if self._closed.is_set():
                _offer(subscription.queue, None)
            yield subscription.queue
        finally:
            self._subscribers.discard(subscription)

    def _poll(self) -> list[Change]:
        newest = self._queue.last_event_id()
        if self._last_id is None:
            self._last_id = newest       # the first poll only learns where the log stands
            return []
        if newest <= self._last_id:
            return []
        # A little look-back: on PostgreSQL a transaction holding a lower id may commit
        # after a higher one was already seen.
        events = self._queue.events_after(max(0, self._last_id - LOOK_BACK), limit=MAX_BATCH)
        if events:
            self._last_id = max(self._last_id, events[-1].id)
        return self._recent.fresh([Change.of(e) for e in events])


def _offer(queue: asyncio.Queue[Batch], batch: Batch) -> None:
    """Put without waiting; a page that lags this far behind gets "reload" instead."""
    try:
        queue.put_nowait(batch)
    except asyncio.QueueFull:
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(None)
