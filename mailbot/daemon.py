"""`mailbot run`: the mailbox workers (one thread each), the sender and the periodic jobs.

The event loop hosts the sender and the scheduler; each mailbox worker blocks in IDLE in its
own thread and wakes the sender through ``loop.call_soon_threadsafe`` when it recorded mail.
SIGTERM / SIGINT stop everything within about a second; whatever was mid-flight is either
committed or not, and the checkpoint makes the next start pick up exactly there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mailbot.app import App, source_factory
from mailbot.config import ImapSource
from mailbot.errors import MailbotError, StoreError
from mailbot.scheduler import MACRO_RELOAD_INTERVAL, Jobs
from mailbot.sending import SendReport
from mailbot.worker import MailboxWorker

log = logging.getLogger(__name__)


@dataclass
class OnceReport:
    recorded: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    send: SendReport = field(default_factory=SendReport)


def _worker(app: App, name: str, on_recorded: Callable[[], None] = lambda: None) -> MailboxWorker:
    box = app.settings.mailbox(name)
    src = box.source
    return MailboxWorker(
        box.name, source_factory(box), app.processor(box), app.store,
        idle_timeout=src.idle_timeout if isinstance(src, ImapSource) else 240.0,
        poll_interval=src.poll_interval,
        on_recorded=on_recorded,
    )


async def run_once(app: App) -> OnceReport:
    """Work through every mailbox's backlog, send what is due, and return what happened.

    A mailbox that cannot be reached is reported and the others still run.
    """
    report = OnceReport()
    for box in app.settings.mailboxes:
        worker = _worker(app, box.name)
        try:
            report.recorded[box.name] = await asyncio.to_thread(worker.run_once)
        except MailbotError as exc:
            report.errors[box.name] = str(exc)
            log.error("mailbox %s: %s", box.name, exc)
    report.send = await app.send_worker().send_due()
    # `run --once` from cron is a complete deployment too: it applies the retention setting.
    await asyncio.to_thread(purge_old_bodies, app)
    return report


class Daemon:
    def __init__(self, app: App) -> None:
        self._app = app
        self._stop = threading.Event()
        self._wake_sender = asyncio.Event()
        self._workers: list[MailboxWorker] = []
        self._threads: list[threading.Thread] = []

    def request_stop(self) -> None:
        self._stop.set()
        self._wake_sender.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
                loop.add_signal_handler(sig, self.request_stop)

        def wake() -> None:
            loop.call_soon_threadsafe(self._wake_sender.set)

        jobs = Jobs()
        for box in self._app.settings.mailboxes:
            worker = _worker(self._app, box.name, on_recorded=wake)
            self._workers.append(worker)
            thread = threading.Thread(target=worker.run_forever, args=(self._stop,),
                                      name=f"mailbox-{box.name}", daemon=True)
            self._threads.append(thread)
            # Polling: the fallback when the server lacks IDLE, and a safety net otherwise.
            jobs.every(box.source.poll_interval, f"poll:{box.name}", worker.poke)
        jobs.every(10.0, "send", self._wake_sender.set)
        jobs.every(60.0, "watchdog", self._watchdog)
        # At start too: a daemon restarted more often than daily (deploys, crashes) would
        # otherwise never reach its first daily run, and never purge anything.
        jobs.every(24 * 3600.0, "retention", self._retention, at_start=True)
        if self._app.responder is not None:
            jobs.every(MACRO_RELOAD_INTERVAL, "reload:macros", self._app.responder.check_reload)
        for thread in self._threads:
            thread.start()
        jobs.start()
        log.info("mailbot running: %d mailbox(es): %s", len(self._workers),
                 ", ".join(w.name for w in self._workers))
        sender = self._app.send_worker()
        # One round at once: replies a crash or a stop left due (or stuck in "sending") go out
        # now, not after the first timer tick or whenever new mail happens to arrive.
        self._wake_sender.set()
        web = None
        try:
            if self._app.settings.web.enabled:
                # The agents' page in this process: its approvals wake this daemon's sender.
                from mailbot.web.server import WebServer  # Starlette/uvicorn load only when served

                web = WebServer(self._app, send_now=wake, embedded=True)
                await web.start()
            while not self._stop.is_set():
                await self._wake_sender.wait()
                self._wake_sender.clear()
                if self._stop.is_set():
                    break
                try:
                    await sender.send_due()
                except (StoreError, MailbotError) as exc:
                    log.warning("sending paused: %s; retrying shortly", exc)
                    await asyncio.sleep(2.0)
                    self._wake_sender.set()
        finally:
            if web is not None:
                await web.stop()
            jobs.shutdown()
            self._stop.set()
            for thread in self._threads:
                await asyncio.to_thread(thread.join, 5.0)
            log.info("mailbot stopped")

    def _watchdog(self) -> None:
        now = time.monotonic()
        for worker in self._workers:
            silent = now - worker.stats.last_activity
            if silent > 600:
                log.warning("mailbox %s: no sign of life for %.0f s (last error: %s)",
                            worker.name, silent, worker.stats.last_error or "none")

    def _retention(self) -> None:
        purge_old_bodies(self._app)


def purge_old_bodies(app: App) -> int:
    """Apply ``retention_days``: forget the bodies of finished mail older than that."""
    days = app.settings.retention_days
    if days <= 0:
        return 0
    purged = app.store.purge_bodies(datetime.now(UTC) - timedelta(days=days))
    if purged:
        log.info("retention: purged the bodies of %d mails older than %d days", purged, days)
    return purged
