"""The draft state machine, edits, optimistic locking, the audit trail and draft queries."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from mailbot.errors import ConcurrentUpdateError, DraftStateError, NotFoundError, StoreError
from mailbot.models import DraftState, MailOutcome
from mailbot.store import FINAL_STATES, TRANSITIONS, Draft, EmptyDraftError, Store
from mailbot.store import drafts as drafts_module
from tests.store.conftest import Backend
from tests.store.factories import draft_in, move, new_draft, new_mail, record_draft

S = DraftState


def test_the_machine_is_the_documented_one() -> None:
    documented = {
        S.PENDING: {S.APPROVED, S.EDITED, S.REJECTED, S.ESCALATED},
        S.APPROVED: {S.SENDING, S.PENDING, S.EDITED, S.REJECTED, S.ESCALATED},
        S.EDITED: {S.SENDING, S.PENDING, S.EDITED, S.REJECTED, S.ESCALATED},
        S.ESCALATED: {S.PENDING, S.APPROVED, S.EDITED, S.REJECTED},
        S.SENDING: {S.SENT, S.FAILED, S.APPROVED},
        S.FAILED: {S.APPROVED, S.EDITED, S.REJECTED},
        S.SENT: set(),
        S.REJECTED: set(),
    }
    assert dict(TRANSITIONS) == documented
    assert frozenset({S.SENT, S.REJECTED}) == FINAL_STATES


@pytest.mark.parametrize("start", list(DraftState))
def test_every_transition_from(store: Store, start: DraftState) -> None:
    """Each allowed move succeeds with an audit event; each other one is refused unchanged."""
    for target in DraftState:
        draft = draft_in(store, start)
        if target in TRANSITIONS[start]:
            moved = move(store, draft.id, target, actor="alice")
            assert moved.state is target
            assert moved.version == draft.version + 1
            event = store.audit_for_draft(draft.id)[-1]
            assert (event.actor, event.from_state, event.to_state, event.reason) == (
                "alice", start, target, f"to {target}")
        else:
            events = store.audit_for_draft(draft.id)
            with pytest.raises(DraftStateError) as refused:
                move(store, draft.id, target)
            assert str(refused.value) == (
                f"draft {draft.id} is {start.value}; it cannot become {target.value}")
            assert store.get_draft(draft.id) == draft
            assert store.audit_for_draft(draft.id) == events


def test_refused_transition_writes_no_audit(store: Store) -> None:
    draft = draft_in(store, S.SENT)
    before = store.audit_for_draft(draft.id)
    with pytest.raises(DraftStateError):
        store.transition(draft.id, S.APPROVED, actor="alice")
    assert store.audit_for_draft(draft.id) == before


def test_edit_changes_text_and_is_audited(store: Store) -> None:
    draft = draft_in(store, S.PENDING)
    edited = store.transition(draft.id, S.EDITED, actor="alice", reason="tone",
                              subject="Re: uw bestelling", body="Beste Anna, ...",
                              expected_version=draft.version, detail={"diff": "+Anna"})
    assert (edited.subject, edited.body, edited.state) == ("Re: uw bestelling",
                                                           "Beste Anna, ...", S.EDITED)
    assert edited.updated_at >= draft.updated_at
    event = store.audit_for_draft(draft.id)[-1]
    assert (event.action, event.detail, event.reason) == ("edited", {"diff": "+Anna"}, "tone")


def test_edit_needs_new_text_and_only_edits_take_text(store: Store) -> None:
    draft = draft_in(store, S.PENDING)
    with pytest.raises(ValueError, match="needs a new subject or body"):
        store.transition(draft.id, S.EDITED, actor="alice")
    with pytest.raises(ValueError, match="only an edit"):
        store.transition(draft.id, S.APPROVED, actor="alice", body="sneaky")
    assert store.get_draft(draft.id) == draft


def test_an_empty_draft_cannot_be_approved(store: Store) -> None:
    result = store.record_mail(new_mail(), outcome=MailOutcome.NEEDS_AGENT,
                               draft=new_draft(body=""))
    assert result.draft is not None
    draft_id = result.draft.id
    with pytest.raises(EmptyDraftError, match="edit the draft first"):
        store.transition(draft_id, S.APPROVED, actor="alice")
    with pytest.raises(EmptyDraftError, match="edit the draft first"):
        store.transition(draft_id, S.EDITED, actor="alice", body="   ")
    assert issubclass(EmptyDraftError, DraftStateError)
    written = store.transition(draft_id, S.EDITED, actor="alice", body="Beste klant, ...")
    assert written.state is S.EDITED


def test_unknown_draft(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no draft with id 4242"):
        store.get_draft(4242)
    with pytest.raises(NotFoundError):
        store.transition(4242, S.APPROVED, actor="alice")
    with pytest.raises(NotFoundError):
        store.audit_for_draft(4242)
    assert isinstance(NotFoundError("draft", 1), LookupError | StoreError)


def test_stale_expected_version_is_refused(store: Store) -> None:
    draft = draft_in(store, S.PENDING)
    store.transition(draft.id, S.ESCALATED, actor="bob")
    with pytest.raises(ConcurrentUpdateError, match="changed by someone else"):
        store.transition(draft.id, S.APPROVED, actor="alice", expected_version=draft.version)
    assert store.get_draft(draft.id).state is S.ESCALATED


@pytest.mark.parametrize("with_version", [True, False])
def test_two_agents_approving_at_once_exactly_one_wins(backend: Backend, store: Store,
                                                       with_version: bool) -> None:
    agents = [backend.open(), backend.open()]
    for _ in range(8):
        draft = draft_in(store, S.PENDING)
        outcomes = _approve_at_once(agents, draft, with_version)
        wins = [o for o in outcomes if isinstance(o, Draft)]
        losses = [o for o in outcomes if isinstance(o, StoreError)]
        assert len(wins) == 1 and len(losses) == 1, outcomes
        assert isinstance(losses[0], ConcurrentUpdateError | DraftStateError)
        assert str(losses[0]).startswith(f"draft {draft.id} ")
        approvals = [e for e in store.audit_for_draft(draft.id) if e.action == "approved"]
        assert len(approvals) == 1
        assert store.get_draft(draft.id).version == draft.version + 1


def _approve_at_once(agents: list[Store], draft: Draft,
                     with_version: bool) -> list[Draft | StoreError]:
    outcomes: list[Draft | StoreError] = []
    start = threading.Barrier(len(agents))

    def approve(agent: Store, name: str) -> None:
        start.wait()
        try:
            outcomes.append(agent.transition(
                draft.id, S.APPROVED, actor=name,
                expected_version=draft.version if with_version else None))
        except StoreError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=approve, args=(agent, f"agent{n}"))
               for n, agent in enumerate(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_update_is_guarded_by_version(backend: Backend, store: Store,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Agent A reads the draft, agent B changes it, then A writes: A must not win.

    PostgreSQL lets B commit in between, so A's ``WHERE version = :v`` matches nothing
    (ConcurrentUpdateError). SQLite's BEGIN IMMEDIATE makes B wait for A instead, and B then
    finds the draft already approved (DraftStateError). Either way exactly one wins.
    """
    draft = draft_in(store, S.PENDING)
    a_read, b_done = threading.Event(), threading.Event()
    check = drafts_module.check_transition

    def slow_check(draft_id: int, current: DraftState, wanted: DraftState) -> None:
        check(draft_id, current, wanted)
        if threading.current_thread().name == "A":
            a_read.set()
            b_done.wait(timeout=1.0)     # PostgreSQL: B finishes; SQLite: B is blocked

    monkeypatch.setattr(drafts_module, "check_transition", slow_check)
    outcomes: dict[str, object] = {}

    def run(name: str, to_state: DraftState) -> None:
        try:
            outcomes[name] = move(backend.open(), draft.id, to_state, actor=name)
        except StoreError as exc:
            outcomes[name] = exc
        finally:
            if name == "B":
                b_done.set()

    a = threading.Thread(target=run, args=("A", S.APPROVED), name="A")
    # B approves too: allowed from pending, not from approved, so B can only win by going first.
    b = threading.Thread(target=run, args=("B", S.APPROVED), name="B")
    a.start()
    assert a_read.wait(timeout=30)       # A has read version 1 and holds it
    b.start()
    a.join()
    b.join()
    if backend.name == "postgresql":
        assert isinstance(outcomes["A"], ConcurrentUpdateError)
        assert isinstance(outcomes["B"], Draft) and outcomes["B"].state is S.APPROVED
    else:
        assert isinstance(outcomes["A"], Draft) and outcomes["A"].state is S.APPROVED
        assert isinstance(outcomes["B"], DraftStateError)
    assert store.get_draft(draft.id).version == draft.version + 1


def test_audit_trail_of_a_whole_life(store: Store) -> None:
    result = record_draft(store)
    assert result.draft is not None
    draft_id = result.draft.id
    move(store, draft_id, S.ESCALATED, actor="alice")
    move(store, draft_id, S.PENDING, actor="bob")
    move(store, draft_id, S.EDITED, actor="bob")
    move(store, draft_id, S.PENDING, actor="carol")
    move(store, draft_id, S.APPROVED, actor="carol")
    assert len(store.claim_sendable("worker-1", datetime.now(UTC))) == 1
    store.retry_later(draft_id, "451 try later", 451, datetime.now(UTC), actor="worker-1")
    store.claim_sendable("worker-1", datetime.now(UTC))
    store.mark_failed(draft_id, "550 no such user", 550, actor="worker-1")
    move(store, draft_id, S.APPROVED, actor="dave")
    store.claim_sendable("worker-2", datetime.now(UTC))
    store.mark_sent(draft_id, actor="worker-2")

    events = store.audit_for_draft(draft_id)
    assert [(e.action, e.actor) for e in events] == [
        ("drafted", "mailbot"),
        ("escalated", "alice"),
        ("returned", "bob"),
        ("edited", "bob"),
        ("unapproved", "carol"),
        ("approved", "carol"),
        ("claimed", "worker-1"),
        ("retry-scheduled", "worker-1"),
        ("claimed", "worker-1"),
        ("failed", "worker-1"),
        ("retried", "dave"),
        ("claimed", "worker-2"),
        ("sent", "worker-2"),
    ]
    assert all(e.at.tzinfo is UTC for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)
    failed = events[9]
    assert (failed.reason, failed.detail) == ("550 no such user", {"smtp_code": 550})
    mail_events = store.audit_for_mail(result.mail.id)
    assert mail_events[0].action == "recorded" and mail_events[1:] == events
    final = store.get_draft(draft_id)
    assert final.version == len(events)
    assert final.attempts == 2


def test_list_and_count(store: Store) -> None:
    a = draft_in(store, S.PENDING)
    b = draft_in(store, S.APPROVED)
    c = draft_in(store, S.PENDING)
    record_draft(store, mailbox="Sales")
    assert [d.id for d in store.list_drafts(mailbox="INBOX")] == [a.id, b.id, c.id]
    assert [d.id for d in store.list_drafts([S.PENDING], mailbox="INBOX")] == [a.id, c.id]
    assert [d.id for d in store.list_drafts([S.PENDING], mailbox="INBOX", limit=1,
                                            offset=1)] == [c.id]
    assert store.list_drafts([S.SENT]) == []
    counts = store.count_by_state()
    assert counts[S.PENDING] == 3 and counts[S.APPROVED] == 1 and counts[S.SENT] == 0
    assert set(counts) == set(DraftState)
    assert store.count_by_state(mailbox="Sales")[S.PENDING] == 1


def test_auto_replies_since_counts_live_automatic_replies(backend: Backend) -> None:
    from tests.store.conftest import FakeClock
    clock = FakeClock()
    store = backend.open(clock=clock)
    store.migrate()
    start = clock.now
    record_draft(store, auto=True, to_addr="Klant@Example.nl")
    clock.advance(minutes=10)
    second = record_draft(store, auto=True)
    rejected = record_draft(store, auto=True)
    assert rejected.draft is not None
    store.transition(rejected.draft.id, S.REJECTED, actor="alice")
    record_draft(store, auto=False)                                  # a person's reply
    record_draft(store, auto=True, to_addr="ander@example.nl")
    record_draft(store, auto=True, mailbox="Sales")

    assert store.auto_replies_since("INBOX", "klant@example.nl", start) == 2
    assert store.auto_replies_since("INBOX", "KLANT@example.nl", start) == 2
    assert second.mail.recorded_at == start + timedelta(minutes=10)
    assert store.auto_replies_since("INBOX", "klant@example.nl",
                                    start + timedelta(minutes=5)) == 1
    assert store.auto_replies_since("INBOX", "klant@example.nl",
                                    start + timedelta(hours=1)) == 0
    assert store.auto_replies_since("Sales", "klant@example.nl", start) == 1
    with pytest.raises(ValueError, match="timezone-aware"):
        store.auto_replies_since("INBOX", "klant@example.nl", datetime(2024, 1, 1))
