"""The durable queue: every inbound mail with its outcome, reply drafts and their state,
the audit trail, mailbox checkpoints and worker leases, on SQLite or PostgreSQL.

    from mailbot.store import Store, NewMail, NewDraft

    store = Store.open(url)      # api.py     one short transaction per call
    store.migrate()              # migrate.py + migrations/   (alembic, shipped in the package)

    schema.py    tables          records.py  values in and out    db.py   engines, retries
    mails.py     record, dedupe, checkpoints, follow-ups, retention
    drafts.py    the state machine (TRANSITIONS) and draft changes
    sending.py   claims and send results          leases.py / audit.py
    accounts.py  users, web sessions, login attempts   (store.accounts, for the web page)
    queue.py     the agents' filtered queue, history, edits that keep the state   (store.queue)
"""

from mailbot.store.api import Store, utc_now
from mailbot.store.drafts import FINAL_STATES, TRANSITIONS, EmptyDraftError
from mailbot.store.records import (
    AuditEvent,
    Checkpoint,
    Draft,
    Mail,
    NewDraft,
    NewMail,
    RecordResult,
    dedupe_key_for,
)
from mailbot.store.schema import Role

__all__ = [
    "FINAL_STATES",
    "TRANSITIONS",
    "AuditEvent",
    "Checkpoint",
    "Draft",
    "EmptyDraftError",
    "Mail",
    "NewDraft",
    "NewMail",
    "RecordResult",
    "Role",
    "Store",
    "dedupe_key_for",
    "utc_now",
]
