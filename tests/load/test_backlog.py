"""Working through a Maildir backlog costs store lookups in proportion to its size.

The Maildir source lists every file at each batch of 50 and asks the store, file by file,
whether it was recorded; the mailbox worker remembers the answers for the connection. Without
that, a backlog of n mails cost about n^2/100 queries (10,000 mails: a million, most of the
half hour such a burst took). Counted here on a real worker, source and store.
"""

from __future__ import annotations

from pathlib import Path

from mailbot.app import source_factory
from mailbot.config import Settings
from mailbot.pipeline import Processor
from mailbot.store import Store
from mailbot.worker import MailboxWorker
from tests.hostile.corpus import message

MAILS = 400


class CountingStore(Store):
    """The real store, counting ``is_recorded`` calls."""

    lookups = 0

    def is_recorded(self, mailbox: str, source_key: str) -> bool:
        CountingStore.lookups += 1
        return super().is_recorded(mailbox, source_key)


def test_a_backlog_costs_store_lookups_in_proportion_to_its_size(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    for sub in ("new", "cur", "tmp"):
        (inbox / sub).mkdir(parents=True)
    for n in range(MAILS):
        (inbox / "new" / f"{1_700_000_000 + n}.M{n}P1.backlog").write_bytes(message(n=n + 1))
    settings = Settings.model_validate({
        "database": {"url": f"sqlite:///{tmp_path / 'mailbot.db'}"},
        "mailboxes": [{"name": "support", "address": "support@shop.example",
                       "source": {"kind": "maildir", "path": str(inbox)},
                       "transport": {"kind": "outbox", "path": str(tmp_path / "outbox")}}],
    })
    store = CountingStore(Store.open(settings.database.url).db)
    store.migrate()
    box = settings.mailboxes[0]
    try:
        worker = MailboxWorker("support", source_factory(box), Processor(settings, box, store), store)
        CountingStore.lookups = 0
        assert worker.run_once() == MAILS
        # Each file is asked about at most once per batch it is new in, plus once when seen
        # recorded: linear. The quadratic way asked 50 * (0 + 1 + ... + 7) = 1,400 extra here.
        assert CountingStore.lookups <= 2 * MAILS, CountingStore.lookups
        assert len(store.list_mails(limit=10 * MAILS)) == MAILS
        assert worker.run_once() == 0          # a second pass finds nothing new
    finally:
        store.close()
