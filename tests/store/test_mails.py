"""record_mail: one outcome per mail, idempotent replay, dedupe, checkpoints, follow-ups."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailbot.errors import NotFoundError
from mailbot.models import DraftState, MailOutcome
from mailbot.store import Checkpoint, NewMail, RecordResult, Store, dedupe_key_for
from tests.store.conftest import Backend
from tests.store.factories import draft_in, new_draft, new_mail, record_draft


def test_records_mail_with_outcome_and_values(store: Store) -> None:
    mail = new_mail(1)
    result = store.record_mail(
        mail, outcome=MailOutcome.SKIPPED, reason="auto_submitted: auto-replied",
        analysis={"language": "nl", "scores": {"refund": 0.9}}, decision=None,
    )
    assert result.created and result.draft is None and result.duplicate_of is None
    got = store.get_mail(result.mail.id)
    assert got == result.mail
    assert got.outcome is MailOutcome.SKIPPED
    assert got.reason == "auto_submitted: auto-replied"
    assert got.raw == mail.raw and got.text == "Hallo"
    assert got.analysis == {"language": "nl", "scores": {"refund": 0.9}}
    assert got.decision is None
    assert got.dedupe_key == "m1@example.nl"
    assert got.received_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert got.recorded_at.tzinfo is UTC
    assert not got.source_done and not got.answered_done


def test_datetimes_come_back_in_utc(store: Store) -> None:
    amsterdam = timezone(timedelta(hours=2))
    mail = NewMail(mailbox="INBOX", source_key="k", from_addr="a@b.nl", subject="s", size=1,
                   raw=b"x", received_at=datetime(2024, 5, 1, 10, 0, tzinfo=amsterdam))
    got = store.record_mail(mail, outcome=MailOutcome.IGNORED).mail
    assert got.received_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert got.received_at is not None and got.received_at.tzinfo is UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        NewMail(mailbox="INBOX", source_key="k", from_addr="a@b.nl", subject="s", size=1,
                raw=b"x", received_at=datetime(2024, 5, 1, 10, 0))


def test_replay_returns_the_first_recording_unchanged(store: Store) -> None:
    first = store.record_mail(new_mail(1), outcome=MailOutcome.DRAFTED, reason="first",
                              draft=new_draft(), checkpoint=(7, 1))
    events = store.audit_for_mail(first.mail.id)
    again = store.record_mail(new_mail(1), outcome=MailOutcome.SKIPPED, reason="second",
                              checkpoint=(7, 1))
    assert not again.created
    assert again.mail == first.mail
    assert again.draft == first.draft
    assert store.audit_for_mail(first.mail.id) == events
    assert store.count_by_state()[DraftState.PENDING] == 1
    assert store.is_recorded("INBOX", "7:1")
    assert not store.is_recorded("INBOX", "7:2")
    assert not store.is_recorded("Other", "7:1")


def test_same_message_id_elsewhere_is_a_duplicate_without_draft(store: Store) -> None:
    first = store.record_mail(new_mail(1), outcome=MailOutcome.DRAFTED, draft=new_draft())
    copy = new_mail(2, message_id="m1@example.nl")
    second = store.record_mail(copy, outcome=MailOutcome.DRAFTED, draft=new_draft())
    assert second.created
    assert second.mail.outcome is MailOutcome.DUPLICATE
    assert second.mail.reason == f"duplicate of mail {first.mail.id}"
    assert second.duplicate_of == first.mail.id
    assert second.draft is None
    assert store.count_by_state()[DraftState.PENDING] == 1
    # Replaying the duplicate still names the first mail.
    replay = store.record_mail(copy, outcome=MailOutcome.DRAFTED, draft=new_draft())
    assert not replay.created and replay.duplicate_of == first.mail.id
    [event] = store.audit_for_mail(second.mail.id)
    assert event.action == "recorded" and event.detail == {
        "outcome": "duplicate", "duplicate_of": first.mail.id}


def test_without_message_id_the_bytes_are_the_dedupe_key(store: Store) -> None:
    a = store.record_mail(new_mail(1, message_id=None, raw=b"same"), outcome=MailOutcome.IGNORED)
    b = store.record_mail(new_mail(2, message_id=None, raw=b"same"), outcome=MailOutcome.IGNORED)
    c = store.record_mail(new_mail(3, message_id=None, raw=b"other"),
                          outcome=MailOutcome.IGNORED)
    assert a.mail.dedupe_key == dedupe_key_for(None, b"same")
    assert a.mail.dedupe_key.startswith("sha256:")
    assert b.mail.outcome is MailOutcome.DUPLICATE and b.duplicate_of == a.mail.id
    assert c.mail.outcome is MailOutcome.IGNORED


def test_dedupe_is_per_mailbox(store: Store) -> None:
    store.record_mail(new_mail(1, mailbox="INBOX"), outcome=MailOutcome.IGNORED)
    other = store.record_mail(new_mail(1, mailbox="Sales"), outcome=MailOutcome.IGNORED)
    assert other.mail.outcome is MailOutcome.IGNORED


def test_failed_mail_does_not_claim_its_message_id(store: Store) -> None:
    store.record_mail(new_mail(1), outcome=MailOutcome.FAILED, reason="parse crashed")
    retry = store.record_mail(new_mail(2, message_id="m1@example.nl"),
                              outcome=MailOutcome.DRAFTED, draft=new_draft())
    assert retry.mail.outcome is MailOutcome.DRAFTED and retry.draft is not None


def test_draft_initial_state_and_audit(store: Store) -> None:
    pending = record_draft(store)
    auto = record_draft(store, auto=True)
    escalated = store.record_mail(new_mail(), outcome=MailOutcome.ESCALATED,
                                  reason="legal_threat", draft=new_draft())
    assert pending.draft and pending.draft.state is DraftState.PENDING
    assert auto.draft and auto.draft.state is DraftState.APPROVED and auto.draft.auto
    assert escalated.draft and escalated.draft.state is DraftState.ESCALATED

    events = store.audit_for_mail(escalated.mail.id)
    assert [(e.action, e.to_state, e.reason) for e in events] == [
        ("recorded", None, "legal_threat"),
        ("escalated", DraftState.ESCALATED, "legal_threat"),
    ]
    assert [e.action for e in store.audit_for_mail(auto.mail.id)] == ["recorded",
                                                                      "auto-approved"]
    assert [e.action for e in store.audit_for_mail(pending.mail.id)] == ["recorded",
                                                                         "drafted"]
    draft = auto.draft
    assert draft.references == ("m0@example.nl", "m1@example.nl")
    assert draft.variables == {"order": "12345"}
    assert draft.explanation == ["category refund 0.93"]
    assert draft.version == 1 and draft.attempts == 0


@pytest.mark.parametrize(("outcome", "with_draft", "auto"), [
    (MailOutcome.DRAFTED, False, False),
    (MailOutcome.AUTO_REPLY, False, False),
    (MailOutcome.SKIPPED, True, False),
    (MailOutcome.DRAFTED, True, True),
    (MailOutcome.AUTO_REPLY, True, False),
])
def test_outcome_must_fit_the_draft(store: Store, outcome: MailOutcome, with_draft: bool,
                                    auto: bool) -> None:
    draft = new_draft(auto=auto) if with_draft else None
    with pytest.raises(ValueError):
        store.record_mail(new_mail(), outcome=outcome, draft=draft)
    assert store.list_drafts() == []


def test_checkpoint_advances_never_back_and_resets_on_new_uidvalidity(store: Store) -> None:
    assert store.get_checkpoint("INBOX") is None
    store.record_mail(new_mail(10), outcome=MailOutcome.IGNORED, checkpoint=(7, 10))
    assert store.get_checkpoint("INBOX") == Checkpoint(7, 10)
    store.record_mail(new_mail(5), outcome=MailOutcome.IGNORED, checkpoint=(7, 5))
    assert store.get_checkpoint("INBOX") == Checkpoint(7, 10)        # never backwards
    store.record_mail(new_mail(12), outcome=MailOutcome.IGNORED, checkpoint=(7, 12))
    assert store.get_checkpoint("INBOX") == Checkpoint(7, 12)
    store.record_mail(new_mail(3, uidvalidity=8), outcome=MailOutcome.IGNORED,
                      checkpoint=(8, 3))
    assert store.get_checkpoint("INBOX") == Checkpoint(8, 3)         # renumbered mailbox
    assert store.advance_checkpoint("INBOX", 8, 2) == Checkpoint(8, 3)
    assert store.advance_checkpoint("INBOX", 8, 9) == Checkpoint(8, 9)
    assert store.get_checkpoint("INBOX") == Checkpoint(8, 9)
    assert store.get_checkpoint("Sales") is None


def test_checkpoint_advances_on_replay_and_duplicate(store: Store) -> None:
    store.record_mail(new_mail(1), outcome=MailOutcome.IGNORED)
    store.record_mail(new_mail(1), outcome=MailOutcome.IGNORED, checkpoint=(7, 1))
    store.record_mail(new_mail(2, message_id="m1@example.nl"), outcome=MailOutcome.IGNORED,
                      checkpoint=(7, 2))
    checkpoint = store.get_checkpoint("INBOX")
    assert checkpoint is not None and checkpoint.last_uid == 2


def test_concurrent_workers_recording_one_mail_record_it_once(backend: Backend,
                                                              store: Store) -> None:
    workers = [backend.open() for _ in range(4)]
    mail = new_mail(1)
    results: list[RecordResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def work(worker: Store, n: int) -> None:
        start.wait()
        try:
            # The same mail, and copies of it under other UIDs, all at the same moment.
            results.append(worker.record_mail(mail, outcome=MailOutcome.DRAFTED,
                                              draft=new_draft()))
            results.append(worker.record_mail(
                new_mail(100 + n, message_id="m1@example.nl"),
                outcome=MailOutcome.DRAFTED, draft=new_draft()))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w, n)) for n, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    originals = [r for r in results if r.mail.outcome is MailOutcome.DRAFTED]
    assert len({r.mail.id for r in originals}) == 1
    assert sum(r.created for r in originals) == 1
    duplicates = [r for r in results if r.mail.outcome is MailOutcome.DUPLICATE]
    assert len(duplicates) == len(workers)
    assert {r.duplicate_of for r in duplicates} == {originals[0].mail.id}
    assert store.count_by_state()[DraftState.PENDING] == 1


def test_get_mail_unknown(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no mail with id 999"):
        store.get_mail(999)
    with pytest.raises(NotFoundError):
        store.mark_source_done(999)
    with pytest.raises(NotFoundError):
        store.audit_for_mail(999)


def test_source_actions_and_answered_flags(store: Store) -> None:
    skipped = store.record_mail(new_mail(), outcome=MailOutcome.SKIPPED).mail
    sent = draft_in(store, DraftState.SENT)
    pending = draft_in(store, DraftState.PENDING)
    other = store.record_mail(new_mail(mailbox="Sales"), outcome=MailOutcome.SKIPPED).mail

    todo = store.pending_source_actions("INBOX")
    assert [m.id for m in todo] == [skipped.id, sent.mail_id, pending.mail_id]
    store.mark_source_done(skipped.id)
    assert [m.id for m in store.pending_source_actions("INBOX")] == [sent.mail_id,
                                                                      pending.mail_id]
    assert [m.id for m in store.pending_source_actions("Sales")] == [other.id]
    assert store.get_mail(skipped.id).source_done

    assert [m.id for m in store.pending_answered_flags("INBOX")] == [sent.mail_id]
    store.mark_answered_done(sent.mail_id)
    assert store.pending_answered_flags("INBOX") == []
    assert store.get_mail(sent.mail_id).answered_done


def test_purge_bodies_keeps_mails_with_open_drafts(store: Store) -> None:
    no_draft = store.record_mail(new_mail(), outcome=MailOutcome.SKIPPED).mail
    sent = draft_in(store, DraftState.SENT)
    rejected = draft_in(store, DraftState.REJECTED)
    pending = draft_in(store, DraftState.PENDING)
    failed = draft_in(store, DraftState.FAILED)    # may still be retried by hand

    now = datetime.now(UTC)
    assert store.purge_bodies(now - timedelta(hours=1)) == 0
    assert store.purge_bodies(now + timedelta(seconds=5)) == 3
    for mail_id in (no_draft.id, sent.mail_id, rejected.mail_id):
        mail = store.get_mail(mail_id)
        assert mail.raw is None and mail.text is None
        assert mail.subject and mail.from_addr             # headers stay
    for mail_id in (pending.mail_id, failed.mail_id):
        assert store.get_mail(mail_id).raw is not None
    assert store.purge_bodies(now + timedelta(seconds=5)) == 0     # nothing left to purge
    assert store.get_draft(sent.id).body                             # drafts stay
