"""Claims and send results: no draft is sent twice, retries wait, crashes are found."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from mailbot.errors import DraftStateError
from mailbot.models import DraftState, MailOutcome
from mailbot.store import Draft, Store
from tests.store.conftest import Backend
from tests.store.factories import draft_in, new_draft, new_mail, record_draft

S = DraftState


def test_claims_due_approved_and_edited_drafts_oldest_first(store: Store) -> None:
    now = datetime.now(UTC)
    approved = draft_in(store, S.APPROVED)
    pending = draft_in(store, S.PENDING)
    edited = draft_in(store, S.EDITED)
    later = store.record_mail(
        new_mail(), outcome=MailOutcome.AUTO_REPLY,
        draft=new_draft(auto=True, not_before=now + timedelta(minutes=5))).draft
    due = store.record_mail(
        new_mail(), outcome=MailOutcome.AUTO_REPLY,
        draft=new_draft(auto=True, not_before=now - timedelta(minutes=5))).draft
    assert later is not None and due is not None

    claimed = store.claim_sendable("worker-1", now, limit=2)
    assert [d.id for d in claimed] == [approved.id, edited.id]
    assert all(d.state is S.SENDING and d.claimed_by == "worker-1" and d.claimed_at == now
               for d in claimed)
    assert [d.id for d in store.claim_sendable("worker-1", now)] == [due.id]
    assert store.claim_sendable("worker-1", now) == []
    assert [d.id for d in store.claim_sendable("worker-1", now + timedelta(minutes=6))] == [
        later.id]
    assert store.get_draft(pending.id).state is S.PENDING
    event = store.audit_for_draft(approved.id)[-1]
    assert (event.action, event.actor, event.from_state, event.to_state) == (
        "claimed", "worker-1", S.APPROVED, S.SENDING)


def test_concurrent_claims_never_hand_out_a_draft_twice(backend: Backend, store: Store) -> None:
    total = 120
    for _ in range(total):
        record_draft(store, auto=True)
    workers = [backend.open() for _ in range(4)]
    claims: dict[str, list[int]] = {}
    start = threading.Barrier(len(workers))
    now = datetime.now(UTC)

    def work(worker: Store, name: str) -> None:
        mine = claims.setdefault(name, [])
        start.wait()
        while batch := worker.claim_sendable(name, now, limit=7):
            mine.extend(d.id for d in batch)

    threads = [threading.Thread(target=work, args=(w, f"w{n}"))
               for n, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [draft_id for ids in claims.values() for draft_id in ids]
    assert len(every) == len(set(every)) == total
    assert store.count_by_state()[S.SENDING] == total
    for name, ids in claims.items():
        for draft_id in ids[:3]:
            assert store.get_draft(draft_id).claimed_by == name


def test_mark_sent(store: Store) -> None:
    draft = draft_in(store, S.SENDING)
    sent = store.mark_sent(draft.id, actor="worker-1")
    assert sent.state is S.SENT and sent.sent_at is not None and sent.sent_at.tzinfo is UTC
    with pytest.raises(DraftStateError):
        store.mark_sent(draft.id, actor="worker-1")      # sent is final


def test_mark_failed_records_the_relays_answer(store: Store) -> None:
    draft = draft_in(store, S.SENDING)
    failed = store.mark_failed(draft.id, "550 5.1.1 user unknown", 550, actor="worker-1")
    assert (failed.state, failed.last_error, failed.smtp_code, failed.attempts) == (
        S.FAILED, "550 5.1.1 user unknown", 550, 1)
    event = store.audit_for_draft(draft.id)[-1]
    assert (event.action, event.reason, event.detail) == (
        "failed", "550 5.1.1 user unknown", {"smtp_code": 550})
    retried = store.transition(draft.id, S.APPROVED, actor="alice", reason="address fixed")
    assert retried.state is S.APPROVED


def test_retry_later_waits_until_not_before(store: Store) -> None:
    now = datetime.now(UTC)
    draft = draft_in(store, S.APPROVED)
    [claimed] = store.claim_sendable("worker-1", now)
    retry_at = now + timedelta(minutes=10)
    back = store.retry_later(claimed.id, "421 busy", 421, retry_at, actor="worker-1")
    assert (back.state, back.attempts, back.not_before, back.smtp_code, back.last_error) == (
        S.APPROVED, 1, retry_at, 421, "421 busy")
    assert store.claim_sendable("worker-1", now) == []
    [again] = store.claim_sendable("worker-2", retry_at)
    assert again.id == draft.id and again.claimed_by == "worker-2"
    second = store.retry_later(draft.id, "421 busy", None, retry_at, actor="worker-2")
    assert second.attempts == 2 and second.smtp_code is None
    with pytest.raises(DraftStateError):
        store.retry_later(draft.id, "x", None, retry_at, actor="worker-2")   # not sending


def test_stuck_sending_finds_claims_older_than(store: Store) -> None:
    now = datetime.now(UTC)
    old = draft_in(store, S.APPROVED)
    store.claim_sendable("dead-worker", now - timedelta(minutes=30))
    fresh = draft_in(store, S.APPROVED)
    store.claim_sendable("live-worker", now)
    stuck = store.stuck_sending(now - timedelta(minutes=10))
    assert [d.id for d in stuck] == [old.id]
    assert stuck[0].claimed_by == "dead-worker"
    assert {d.id for d in store.stuck_sending(now + timedelta(seconds=1))} == {old.id, fresh.id}
    # Recovery: the Sent folder had it, or it did not.
    store.mark_sent(old.id, actor="recovery")
    assert [d.id for d in store.stuck_sending(now + timedelta(seconds=1))] == [fresh.id]


def test_claimed_draft_is_a_snapshot(store: Store) -> None:
    draft = draft_in(store, S.APPROVED)
    [claimed] = store.claim_sendable("w", datetime.now(UTC))
    assert isinstance(claimed, Draft)
    assert claimed.version == draft.version + 1
    assert claimed.body == draft.body and claimed.message_id == draft.message_id
