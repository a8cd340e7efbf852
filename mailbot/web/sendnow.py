"""Send approved replies at once when the page runs in its own process (`mailbot web`).

Inside the daemon the page wakes the daemon's own sender instead. Either way the store's
claims are exclusive, so this sender and a daemon on another machine never send one draft
twice. The send runs in a worker thread with its own event loop, because the sender does
blocking work (IMAP for the Sent copy, store calls) that must not stall the page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mailbot.errors import MailbotError
from mailbot.sending import SendWorker

log = logging.getLogger(__name__)


class SendNow:
    """``kick()`` runs the sender soon; one run at a time, and one more if kicked meanwhile."""

    def __init__(self, make_worker: Callable[[], SendWorker]) -> None:
        self._make_worker = make_worker
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def kick(self) -> None:
        """Call from the event loop (a route handler)."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="web-send-now")

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                report = await asyncio.to_thread(lambda: asyncio.run(self._make_worker().send_due()))
                log.info("sent %d, retrying %d, failed %d", report.sent, report.retried, report.failed)
            except MailbotError as exc:
                log.warning("sending from the web page failed: %s (the daemon will retry)", exc)
            except Exception:  # never let a background task die silently
                log.exception("sending from the web page failed")
            if not self._again:
                return

    async def close(self) -> None:
        """Wait for a send in progress (a reply half-handed to the relay should finish)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
