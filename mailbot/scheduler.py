"""Periodic jobs. The only module that imports APScheduler (3.x; 4.x is pre-release).

Jobs:
- ``poll:<mailbox>``  every ``poll_interval`` for a mailbox whose server lacks IDLE (and as a
  safety net for IDLE mailboxes, at a slower pace): pokes the mailbox worker;
- ``send``            every ``send_interval``: sends due drafts (retries whose backoff expired,
  drafts approved by agents from another process such as the CLI or the web app);
- ``watchdog``        every 60 s: a mailbox worker that has shown no sign of life for longer
  than twice its IDLE timeout is logged, so a silent hang is visible;
- ``retention``       at start and daily: purges the bodies of old, finished mail;
- ``reload:macros``   every ``MACRO_RELOAD_INTERVAL`` (2 s): reloads edited macro and policy
  files (``Responder.check_reload``: a stat per file; a bad edit keeps the last good set).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

MACRO_RELOAD_INTERVAL = 2.0   # seconds between checks of the macro folder and the policy file


class Jobs:
    """A thin wrapper so the rest of mailbot does not depend on APScheduler's API."""

    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone="UTC")

    def every(self, seconds: float, name: str, func: Callable[[], Any] | Callable[[], Awaitable[Any]],
              *, jitter: int | None = None, at_start: bool = False) -> None:
        """Run ``func`` every ``seconds``; with ``at_start`` also as soon as the jobs start
        (a daily job would otherwise never run in a process restarted more often than daily)."""
        first: dict[str, Any] = {"next_run_time": datetime.now(UTC)} if at_start else {}
        self._scheduler.add_job(
            func, IntervalTrigger(seconds=seconds, jitter=jitter), id=name, name=name,
            # A slow run must not pile up: skip missed runs instead of running them all.
            max_instances=1, coalesce=True, misfire_grace_time=None, replace_existing=True,
            **first,
        )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def names(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]
