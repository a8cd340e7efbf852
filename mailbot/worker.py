"""One mailbox: catch up on the backlog, then wait (IDLE or polling) and catch up again.

A ``MailboxWorker`` owns one source connection and runs in its own thread, because imapclient
is blocking and a connection must not be shared between threads. Every drop of the connection
is survived: the worker closes what is left, waits with backoff and connects again; the
checkpoint in the store tells it where to go on, so nothing is missed and nothing repeated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mailbot.errors import SourceAuthError, SourceError, StoreError
from mailbot.mail.backoff import Backoff
from mailbot.mail.source import MailSource
from mailbot.pipeline import Processor
from mailbot.store import Store

log = logging.getLogger(__name__)

WAIT_WINDOW = 5.0  # seconds; bounds how long a stop request waits for an IDLE to end


@dataclass
class WorkerStats:
    processed: int = 0
    reconnects: int = 0
    last_activity: float = field(default_factory=time.monotonic)
    last_error: str = ""


class MailboxWorker:
    """Feeds one mailbox's new mail through the ``Processor``.

    ``on_recorded`` is called (from this worker's thread) after each batch that recorded mail,
    so the daemon can wake the sender.
    """

    def __init__(self, name: str, source_factory: Callable[[], MailSource], processor: Processor,
                 store: Store, *, idle_timeout: float = 240.0, poll_interval: float = 30.0,
                 on_recorded: Callable[[], None] = lambda: None, batch: int = 50) -> None:
        self.name = name
        self._source_factory = source_factory
        self._processor = processor
        self._store = store
        self._idle_timeout = idle_timeout
        self._poll_interval = poll_interval
        self._on_recorded = on_recorded
        self._batch = batch
        self._poll_now = threading.Event()
        # Source keys known to be recorded, for this connection. A Maildir source lists every
        # file at each batch and asks about each one; without this, working through a backlog
        # of n mails cost about n^2/100 store queries (10,000 mails: a million, half an hour).
        # A recorded mail never becomes unrecorded, so remembering "yes" answers is safe; the
        # set holds at most one key per message in the folder and is emptied at each connect.
        self._recorded: set[str] = set()
        self.stats = WorkerStats()
        self.supports_idle: bool | None = None

    def poke(self) -> None:
        """Ask for a check now (the polling job calls this when the server lacks IDLE)."""
        self._poll_now.set()

    # ------------------------------------------------------------------ one pass

    def run_once(self) -> int:
        """Connect, work through the whole backlog, carry out pending actions, disconnect.

        Returns the number of mails recorded. Raises SourceError / StoreError to the caller.
        """
        source = self._source_factory()
        source.connect()
        self._recorded.clear()
        try:
            return self._catch_up(source)
        finally:
            source.close()

    def _catch_up(self, source: MailSource) -> int:
        total = 0
        while True:
            count = self._one_batch(source)
            total += count
            if count < self._batch:
                break
        self._finish_pending_actions(source)
        return total

    def _one_batch(self, source: MailSource) -> int:
        checkpoint = self._store.get_checkpoint(self.name)
        uidvalidity = source.uidvalidity
        last_uid = None
        if checkpoint is not None and checkpoint.uidvalidity == uidvalidity:
            last_uid = checkpoint.last_uid
        elif checkpoint is not None and uidvalidity is not None:
            log.warning("mailbox %s: UIDVALIDITY changed from %s to %s; rescanning, Message-IDs "
                        "already handled are recorded as duplicates", self.name,
                        checkpoint.uidvalidity, uidvalidity)
        known = self._recorded

        def is_recorded(key: str) -> bool:
            if key in known:
                return True
            if self._store.is_recorded(self.name, key):
                known.add(key)
                return True
            return False

        count = 0
        for raw in source.fetch_new(last_uid, is_recorded=is_recorded, limit=self._batch):
            processed = self._processor.process(raw)
            known.add(raw.source_key)
            self._mark_handled(source, raw.source_key, processed.result.mail.id)
            count += 1
            self.stats.processed += 1
            self.stats.last_activity = time.monotonic()
        if count:
            self._on_recorded()
        return count

    def _mark_handled(self, source: MailSource, source_key: str, mail_id: int) -> None:
        source.mark_handled(source_key)
        self._store.mark_source_done(mail_id)

    def _finish_pending_actions(self, source: MailSource) -> None:
        """Actions a crash or drop left undone after the outcome was committed."""
        for mail in self._store.pending_source_actions(self.name):
            try:
                self._mark_handled(source, mail.source_key, mail.id)
            except SourceError as exc:
                log.warning("mailbox %s: post-handling action for mail %s failed: %s",
                            self.name, mail.id, exc)
                raise

    # ------------------------------------------------------------------ forever

    def run_forever(self, stop: threading.Event) -> None:
        """Catch up, then wait for changes; reconnect with backoff after any drop, until ``stop``."""
        backoff = Backoff(initial=1.0, maximum=60.0)
        while not stop.is_set():
            source: MailSource | None = None
            try:
                source = self._source_factory()
                source.connect()
                self._recorded.clear()
                self.supports_idle = source.supports_idle
                backoff.reset()
                self._catch_up(source)
                self._wait_loop(source, stop)
            except SourceAuthError as exc:
                self.stats.last_error = str(exc)
                delay = backoff.next_delay()
                log.error("mailbox %s: %s; retrying in %.0f s", self.name, exc, delay)
                stop.wait(delay)
            except (SourceError, StoreError, OSError) as exc:
                self.stats.last_error = str(exc)
                self.stats.reconnects += 1
                delay = backoff.next_delay()
                log.warning("mailbox %s: %s; reconnecting in %.1f s", self.name, exc, delay)
                stop.wait(delay)
            finally:
                if source is not None:
                    source.close()  # never raises (MailSource contract)

    def _wait_loop(self, source: MailSource, stop: threading.Event) -> None:
        while not stop.is_set():
            self.stats.last_activity = time.monotonic()
            if source.supports_idle:
                # IDLE in windows of a few seconds: new mail still wakes us at once (the
                # source returns on EXISTS), a stop request is honoured within the window,
                # and IDLE is re-issued far more often than the 5 minutes servers allow.
                changed = source.wait(min(self._idle_timeout, WAIT_WINDOW))
            else:
                # No IDLE: the scheduler's polling job pokes us every poll_interval.
                changed = self._poll_now.wait(WAIT_WINDOW)
            if changed or self._poll_now.is_set():
                self._poll_now.clear()
                self._catch_up(source)
