"""What the store keeps, and the retention setting that forgets mail bodies.

* Every column of every table is classified below (what it is for, whether it holds the
  customer's words); a new column fails until someone says why it is kept.
* ``retention_days`` in the config purges the bodies of old, finished mail when the daemon
  runs (and on ``mailbot run --once``): real mail recorded by the real Processor, then a
  real process started on the same store. Afterwards the customer's text is nowhere in the
  database -- not in any column and not in the file's bytes -- except the one key sentence
  a macro quoted in the reply (``customer_words``, at most 200 characters), which is part of
  the reply on record.
* Web sessions: the database holds the SHA-256 of the cookie, never the cookie.

tests/store/test_mails.py already tests ``purge_bodies`` itself (which mails qualify).
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import inspect

from mailbot.app import App
from mailbot.config import Settings
from mailbot.models import DraftState, MailOutcome, RawMail
from mailbot.nlp.analyzer import Analyzer
from mailbot.pipeline import Processor
from mailbot.respond import Responder
from mailbot.store import Store
from mailbot.web.auth import Authenticator
from mailbot.web.passwords import Passwords
from tests.hostile.conftest import hostile_settings
from tests.hostile.corpus import PRAISE, message

# table -> column -> why it is kept. "BODY" marks the customer's message itself: the columns
# retention empties. Everything else must be something the queue, the audit trail, the
# dedupe, or sending needs.
COLUMNS: dict[str, dict[str, str]] = {
    "mails": {
        "id": "key", "mailbox": "which mailbox", "source_key": "replay key (checkpoint)",
        "uidvalidity": "IMAP checkpoint", "uid": "IMAP checkpoint", "message_id": "dedupe, threading",
        "dedupe_key": "dedupe", "from_addr": "reply address, per-sender limit",
        "from_name": "queue, reply To name", "subject": "queue, reply subject",
        "received_at": "queue order, SLA", "recorded_at": "retention age", "size": "queue",
        "raw": "BODY", "text": "BODY", "outcome": "the one outcome", "reason": "why",
        "analysis": "category/tone/signals/entities shown to agents",
        "decision": "macro and rule on record", "source_done": "crash recovery",
        "answered_done": "crash recovery",
    },
    "seen_messages": {"mailbox": "dedupe", "dedupe_key": "dedupe", "mail_id": "dedupe"},
    "checkpoints": {"mailbox": "checkpoint", "uidvalidity": "checkpoint", "last_uid": "checkpoint",
                    "updated_at": "checkpoint"},
    "drafts": {
        "id": "key", "mail_id": "the mail", "mailbox": "which mailbox", "state": "state machine",
        "auto": "per-sender limit", "to_addr": "reply", "to_name": "reply", "subject": "reply",
        "body": "reply (what was or will be sent)", "in_reply_to": "threading",
        "references": "threading", "message_id": "no second reply after a crash",
        "language": "reply", "macro_id": "audit", "macro_hash": "audit", "rule": "audit",
        "variables": "audit of the values a macro used", "explanation": "why, for agents",
        "attempts": "retries", "not_before": "retries", "last_error": "failure reason",
        "smtp_code": "failure reason", "assigned_to": "queue", "version": "optimistic lock",
        "created_at": "per-sender limit, queue", "updated_at": "queue", "sent_at": "audit",
        "claimed_by": "exclusive send", "claimed_at": "exclusive send",
    },
    "audit_events": {"id": "key", "mail_id": "audit", "draft_id": "audit", "at": "audit", "actor": "audit",
                     "action": "audit", "from_state": "audit", "to_state": "audit", "reason": "audit",
                     "detail": "audit"},
    "users": {"id": "key", "username": "sign-in", "password_hash": "Argon2id hash only", "role": "rights",
              "active": "disable", "created_at": "admin page"},
    "web_sessions": {"id": "SHA-256 of the cookie", "user_id": "session", "csrf_token": "CSRF",
                     "ip": "throttling, audit", "created_at": "lifetime", "last_seen_at": "idle end",
                     "expires_at": "lifetime"},
    "login_attempts": {"id": "key", "at": "throttling window", "username": "throttling", "ip": "throttling",
                       "success": "throttling"},
    "leases": {"name": "one worker per mailbox", "holder": "lease", "expires_at": "lease"},
    "alembic_version": {"version_num": "schema migrations"},
}

# The complaint: its first real sentence is the one the fallback macro quotes; the marker in
# the second paragraph must vanish with the body.
KEY = "KEYMARK"
TAIL = "TAILMARK-zebra-quokka"


def complaint(n: int) -> bytes:
    body = (f"Beste,\r\n\r\nIk ben echt niet blij met hoe ik door jullie medewerker ben behandeld, {KEY}. "
            f"Dit is de derde keer.\r\n\r\nVerder wil ik nog kwijt dat {TAIL}-{n} mijn tweede punt is, "
            "en dat dit zo niet kan." + " En nog meer uitleg." * 400
            + "\r\n\r\nMet vriendelijke groet,\r\nJan Jansen\r\n")
    return message(body=body, sender=f"Jan Jansen <jan{n}@example.nl>", subject=f"Klacht {n}", n=100 + n)


def test_every_column_is_accounted_for(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'schema.db'}")
    store.migrate()
    try:
        schema = inspect(store.db.engine)
        found = {table: {c["name"] for c in schema.get_columns(table)} for table in schema.get_table_names()}
    finally:
        store.close()
    tables = set(COLUMNS)
    assert set(found) == tables, f"new tables {set(found) - tables}, gone {tables - set(found)}"
    for table, columns in found.items():
        known = set(COLUMNS[table])
        assert columns == known, (f"{table}: unclassified {sorted(columns - known)}, "
                                  f"gone {sorted(known - columns)}")
    body = sorted(f"{t}.{c}" for t, cols in COLUMNS.items() for c, why in cols.items() if why == "BODY")
    assert body == ["mails.raw", "mails.text"]


def _record(root: Path, settings: Settings, analyzer: Analyzer, responder: Responder,
            clock: Callable[[], datetime]) -> dict[str, int]:
    """Real mail through the real Processor into the store, recorded at ``clock()``:
    finished ones (rejected, sent, skipped) and one still waiting for an agent."""
    store = Store.open(settings.database.url, clock=clock)
    store.migrate()
    ids: dict[str, int] = {}
    try:
        processor = Processor(settings, settings.mailboxes[0], store, analyzer=analyzer, decider=responder)
        tag = "old" if clock() < datetime.now(UTC) - timedelta(days=1) else "new"
        number = 1 if tag == "old" else 4
        rejected = processor.process(RawMail("support", f"{tag}-rejected", complaint(number)))
        assert rejected.result.draft is not None and rejected.result.draft.body
        store.transition(rejected.result.draft.id, DraftState.REJECTED, actor="anna", reason="done by phone")
        ids[f"{tag}-rejected"] = rejected.result.mail.id
        if tag == "old":
            waiting = processor.process(RawMail("support", "old-waiting", complaint(2)))
            assert waiting.outcome is MailOutcome.DRAFTED
            ids["old-waiting"] = waiting.result.mail.id
            skipped = processor.process(RawMail("support", "old-skipped", message(
                [("Auto-Submitted", "auto-replied")], body=f"Afwezig. {TAIL}-3", subject="Afwezig", n=103)))
            assert skipped.outcome is MailOutcome.SKIPPED
            ids["old-skipped"] = skipped.result.mail.id
            praise = processor.process(RawMail("support", "old-sent", message(
                body=PRAISE.replace("Groet", f"{TAIL}-5\r\n\r\nGroet"), sender="Jan <jan5@example.nl>",
                subject="Bedankt!", n=105)))
            assert praise.outcome is MailOutcome.AUTO_REPLY
            asyncio.run(App(settings=settings, store=store).send_worker().send_due())
            assert store.get_draft(praise.result.draft.id).state is DraftState.SENT  # type: ignore[union-attr]
            ids["old-sent"] = praise.result.mail.id
    finally:
        store.close()
    return ids


def _scan(db: Path, marker: str) -> set[str]:
    """Every table.column of the SQLite file whose text holds ``marker``."""
    found: set[str] = set()
    with sqlite3.connect(db) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for column in (row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')):
                query = f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE ?'
                if conn.execute(query, (f"%{marker}%",)).fetchone()[0]:
                    found.add(f"{table}.{column}")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("command", [["run"], ["run", "--once"]], ids=["daemon", "once"])
def test_the_retention_setting_purges_old_bodies(tmp_path: Path, analyzer: Analyzer, responder: Responder,
                                                 policy_without_hours: Path, command: list[str]) -> None:
    settings = hostile_settings(tmp_path, policy_without_hours)
    old = datetime.now(UTC) - timedelta(days=40)
    ids = _record(tmp_path, settings, analyzer, responder, lambda: old)
    ids |= _record(tmp_path, settings, analyzer, responder, lambda: datetime.now(UTC))
    config: dict[str, Any] = {
        "database": {"url": settings.database.url},
        "mailboxes": [{"name": "support", "address": "support@shop.example",
                       "source": {"kind": "maildir", "path": str(tmp_path / "inbox")},
                       "transport": {"kind": "outbox", "path": str(tmp_path / "outbox")}}],
        "retention_days": 30,
        "nlp": {"enabled": False}, "respond": {"enabled": False},   # only the store matters here
    }
    path = tmp_path / "retention.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    purged = {"old-rejected", "old-skipped", "old-sent"}
    proc = subprocess.Popen([sys.executable, "-m", "mailbot.cli", "--config", str(path), *command],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    store = Store.open(settings.database.url)
    try:
        if "--once" in command:
            proc.wait(timeout=120)       # it purges as its last step, then exits
        deadline = time.monotonic() + 30
        while True:
            mails = {key: store.get_mail(mail_id) for key, mail_id in ids.items()}
            if all(mails[k].raw is None for k in purged) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    finally:
        store.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)     # the daemon: stop it once it has purged
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert proc.returncode == 0, output[-3000:]
    for key in purged:
        assert mails[key].raw is None and mails[key].text is None, f"{key} kept its body\n{output[-2000:]}"
    for key in ("old-waiting", "new-rejected"):      # unfinished, or too recent
        assert mails[key].raw is not None and mails[key].text is not None, key
    assert "retention: purged the bodies of 3 mails older than 30 days" in output

    db = tmp_path / "mailbot.db"
    # The customer's words beyond the quoted key sentence: gone from every column ...
    for n in (1, 3, 5):
        assert _scan(db, f"{TAIL}-{n}") == set(), n
    # ... while the unfinished and the recent mail still have theirs, in the body columns.
    assert _scan(db, f"{TAIL}-2") == {"mails.raw", "mails.text"}
    # The quoted key sentence stays only in the reply on record (and its variables).
    assert _scan(db, KEY) <= {"mails.raw", "mails.text", "drafts.body", "drafts.variables"}
    # And from the file's bytes (freed pages zeroed: SQLite's secure_delete, on in Debian's build).
    for part in tmp_path.glob("mailbot.db*"):
        data = part.read_bytes()
        for n in (1, 3, 5):
            assert f"{TAIL}-{n}".encode() not in data, (
                f"{part.name} still holds a purged body: enable PRAGMA secure_delete")


def test_the_session_cookie_is_not_stored(tmp_path: Path) -> None:
    settings = hostile_settings(tmp_path, tmp_path / "unused-policy.yaml")
    store = Store.open(settings.database.url)
    store.migrate()
    passwords = Passwords()
    password = "anna-Pa55word-long"
    try:
        store.accounts.add_user("anna", passwords.hash(password), "agent")  # type: ignore[arg-type]
        auth = Authenticator(store, settings.web, passwords, lambda: datetime.now(UTC))
        result = auth.login("anna", password, "127.0.0.1")
        assert result.cookie is not None and result.session is not None
        assert auth.session(result.cookie) is not None
    finally:
        store.close()
    db = tmp_path / "mailbot.db"
    digest = hashlib.sha256(result.cookie.encode()).hexdigest()
    assert _scan(db, digest) == {"web_sessions.id"}
    assert _scan(db, result.cookie) == set() and _scan(db, password) == set()
    for part in tmp_path.glob("mailbot.db*"):
        assert result.cookie.encode() not in part.read_bytes() and password.encode() not in part.read_bytes()
