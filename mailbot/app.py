"""Wiring: build the parts from the settings and hand them to each other. No globals.

``App`` is created once per process (daemon, CLI command, web app) and owns the store; every
other part receives what it needs through its constructor.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mailbot import config as config_module
from mailbot.config import (
    Mailbox,
    Settings,
    config_path,
)
from mailbot.mail import make_sender, make_source
from mailbot.mail.source import MailSource
from mailbot.pipeline import Analyzer, Decider, Processor
from mailbot.sending import SendWorker, SentFolder
from mailbot.store import Store

if TYPE_CHECKING:
    from mailbot.respond import Responder

log = logging.getLogger(__name__)

def source_factory(mailbox: Mailbox) -> Callable[[], MailSource]:
    """A factory of fresh, unconnected sources: each thread or reconnect gets its own."""
    return lambda: make_source(mailbox.name, mailbox.source)


@dataclass
class App:
    settings: Settings
    store: Store
    analyzer: Analyzer | None = None
    decider: Decider | None = None
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, *, migrate: bool = True,
                    analysis: bool = True) -> App:
        """Build the app; ``analysis=False`` skips loading the model (commands that only
        read or change drafts do not need it)."""
        settings = config_module.load(config_path(path))
        url = settings.database.url
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        analyzer = None
        if settings.nlp.enabled and analysis:
            from mailbot.nlp.analyzer import Analyzer  # spaCy loads only when analysis is on

            analyzer = Analyzer.load(settings.nlp.model)
        from mailbot.respond import build_responder  # macros + policy, hot-reloaded

        decider = build_responder(settings)
        store = Store.open(url)
        if migrate:
            store.migrate()
        return cls(settings=settings, store=store, analyzer=analyzer, decider=decider)

    @property
    def responder(self) -> Responder | None:
        """The macro engine (list, render, lint status, reload), when macros are on."""
        from mailbot.respond import Responder

        return self.decider if isinstance(self.decider, Responder) else None

    def processor(self, mailbox: Mailbox) -> Processor:
        return Processor(self.settings, mailbox, self.store, analyzer=self.analyzer, decider=self.decider)

    def send_worker(self, *, clock: Callable[[], datetime] | None = None) -> SendWorker:
        senders = {box.name: make_sender(box.transport) for box in self.settings.mailboxes}
        folders: dict[str, Callable[[], SentFolder]] = {
            box.name: source_factory(box) for box in self.settings.mailboxes
        }
        return SendWorker(self.settings, self.store, senders=senders, sent_folders=folders,
                          worker_id=self.worker_id, clock=clock or (lambda: datetime.now(UTC)))

    def close(self) -> None:
        self.store.close()
