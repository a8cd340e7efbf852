"""SendWorker against a real aiosmtpd and dovecot: retries with backoff, permanent failures,
recovery of a send interrupted by a crash (looked up in Sent before any retry)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbot.app import App
from mailbot.config import load
from mailbot.mail.compose import build_reply
from mailbot.models import DraftState, MailOutcome
from mailbot.store import NewDraft, NewMail, Store
from tests.e2e.conftest import write_config
from tests.support.dovecot import DovecotServer
from tests.support.smtpd import SmtpServer


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def app(tmp_path: Path, dovecot: DovecotServer, smtpd: SmtpServer) -> App:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    settings = load(write_config(tmp_path, dovecot, smtpd, db_url=url))
    store = Store.open(url)
    store.migrate()
    return App(settings=settings, store=store)


def _approved_draft(app: App, dovecot: DovecotServer, n: int = 1) -> int:
    raw = (f"From: Klant <klant{n}@example.nl>\r\nMessage-ID: <orig-{n}@example.nl>\r\n"
           f"Subject: vraag\r\n\r\nhallo\r\n").encode()
    uid = dovecot.append("INBOX", raw)
    uidvalidity = dovecot.uidvalidity()
    result = app.store.record_mail(
        NewMail(mailbox="support", source_key=f"{uidvalidity}:{uid}", from_addr=f"klant{n}@example.nl",
                subject="vraag", size=len(raw), raw=raw, message_id=f"orig-{n}@example.nl"),
        outcome=MailOutcome.NEEDS_AGENT,
        draft=NewDraft(to_addr=f"klant{n}@example.nl", subject="Re: vraag", body="",
                       message_id=f"<reply-{n}@shop.example>", in_reply_to=f"orig-{n}@example.nl",
                       references=(f"orig-{n}@example.nl",)),
    )
    assert result.draft is not None
    app.store.transition(result.draft.id, DraftState.EDITED, actor="anna", body="Beste klant, geregeld.")
    return result.draft.id


def test_temporary_failure_is_retried_with_backoff(app: App, dovecot: DovecotServer,
                                                   smtpd: SmtpServer) -> None:
    draft_id = _approved_draft(app, dovecot)
    clock = Clock()
    worker = app.send_worker(clock=clock)
    smtpd.fail_next(451, "4.3.0 try again later")
    report = asyncio.run(worker.send_due())
    assert report.retried == 1 and report.sent == 0
    draft = app.store.get_draft(draft_id)
    assert draft.state is DraftState.APPROVED
    assert draft.attempts == 1 and draft.smtp_code == 451 and "try again later" in (draft.last_error or "")
    assert draft.not_before is not None and draft.not_before > clock.now
    # Not due yet: nothing is sent.
    assert asyncio.run(worker.send_due()).sent == 0
    clock.now += timedelta(seconds=5)
    report = asyncio.run(worker.send_due())
    assert report.sent == 1
    assert app.store.get_draft(draft_id).state is DraftState.SENT
    assert len(smtpd.received) == 1


def test_permanent_failure_keeps_the_servers_reason_and_is_not_retried(
        app: App, dovecot: DovecotServer, smtpd: SmtpServer) -> None:
    draft_id = _approved_draft(app, dovecot)
    smtpd.fail_next(550, "5.1.1 mailbox unavailable")
    report = asyncio.run(app.send_worker().send_due())
    assert report.failed == 1
    draft = app.store.get_draft(draft_id)
    assert draft.state is DraftState.FAILED
    assert draft.smtp_code == 550 and "mailbox unavailable" in (draft.last_error or "")
    assert asyncio.run(app.send_worker().send_due()).sent == 0
    assert smtpd.received == []


def test_interrupted_send_found_in_sent_is_not_sent_again(app: App, dovecot: DovecotServer,
                                                          smtpd: SmtpServer) -> None:
    draft_id = _approved_draft(app, dovecot)
    # A crashed worker had claimed it and the reply reached the Sent folder (as providers that
    # file sent mail themselves do) before the crash.
    [claimed] = app.store.claim_sendable("otherhost:1", datetime.now(UTC))
    assert claimed.id == draft_id
    message = build_reply(from_addr="support@shop.example", from_name="", to_addr=claimed.to_addr,
                          to_name="", subject=claimed.subject, body=claimed.body,
                          message_id=claimed.message_id, in_reply_to=claimed.in_reply_to,
                          references=claimed.references, auto=False, language="nl")
    dovecot.append("Sent", bytes(message))
    worker = app.send_worker()
    worker.recover_stuck(older_than=timedelta(0))
    assert app.store.get_draft(draft_id).state is DraftState.SENT
    assert smtpd.received == []


def test_interrupted_send_not_in_sent_is_retried_once(app: App, dovecot: DovecotServer,
                                                      smtpd: SmtpServer) -> None:
    draft_id = _approved_draft(app, dovecot)
    app.store.claim_sendable("otherhost:1", datetime.now(UTC))
    worker = app.send_worker()
    worker.recover_stuck(older_than=timedelta(0))
    assert app.store.get_draft(draft_id).state is DraftState.APPROVED
    assert asyncio.run(worker.send_due()).sent == 1
    assert len(smtpd.received) == 1
