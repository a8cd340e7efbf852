"""The draft state machine and the operations on drafts.

    pending   -> approved | edited | rejected | escalated
    approved  -> sending | pending (unapprove) | rejected | escalated
    edited    -> sending | pending (unapprove) | rejected | escalated
    escalated -> pending | approved | edited | rejected
    sending   -> sent | failed | approved (back for a later retry)
    failed    -> approved (manual retry) | rejected
    sent, rejected: final

Every change goes through ``move``: it checks ``TRANSITIONS``, updates the row with
``WHERE id = :id AND version = :version`` (so of two people changing one draft at the same
time exactly one wins, the other gets ``ConcurrentUpdateError``), bumps the version and writes
an audit event, all in the caller's transaction. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from mailbot.errors import ConcurrentUpdateError, DraftStateError, NotFoundError
from mailbot.models import DraftState
from mailbot.store import audit
from mailbot.store.records import Draft, NewDraft, to_draft
from mailbot.store.schema import DraftRow, MailRow

S = DraftState

TRANSITIONS: Final[Mapping[DraftState, frozenset[DraftState]]] = MappingProxyType({
    S.PENDING: frozenset({S.APPROVED, S.EDITED, S.REJECTED, S.ESCALATED}),
    # An agent may still correct an approved draft before the daemon claims it.
    S.APPROVED: frozenset({S.SENDING, S.PENDING, S.EDITED, S.REJECTED, S.ESCALATED}),
    S.EDITED: frozenset({S.SENDING, S.PENDING, S.EDITED, S.REJECTED, S.ESCALATED}),
    S.ESCALATED: frozenset({S.PENDING, S.APPROVED, S.EDITED, S.REJECTED}),
    S.SENDING: frozenset({S.SENT, S.FAILED, S.APPROVED}),
    S.FAILED: frozenset({S.APPROVED, S.EDITED, S.REJECTED}),
    S.SENT: frozenset(),
    S.REJECTED: frozenset(),
})

FINAL_STATES: Final = frozenset(state for state, nexts in TRANSITIONS.items() if not nexts)
SENDABLE_STATES: Final = frozenset({S.APPROVED, S.EDITED})


class EmptyDraftError(DraftStateError):
    """A draft without text cannot be approved: an agent has to write it first."""

    def __init__(self, draft_id: int, current: str, wanted: str) -> None:
        super().__init__(draft_id, current, wanted)
        self.args = (
            f"draft {draft_id} has no body, so it cannot become {wanted}: "
            "edit the draft first",
        )


def check_transition(draft_id: int, current: DraftState, wanted: DraftState) -> None:
    """Raise ``DraftStateError`` unless the state machine allows ``current -> wanted``."""
    if wanted not in TRANSITIONS[current]:
        raise DraftStateError(draft_id, current.value, wanted.value)


def action_name(current: DraftState, wanted: DraftState) -> str:
    """The audit verb for a transition: mostly the new state, with a few clearer names."""
    if wanted is S.PENDING:
        return "unapproved" if current in SENDABLE_STATES else "returned"
    if wanted is S.SENDING:
        return "claimed"
    if wanted is S.APPROVED and current is S.SENDING:
        return "retry-scheduled"
    if wanted is S.APPROVED and current is S.FAILED:
        return "retried"
    return wanted.value


# ---------------------------------------------------------------- create and read


def insert_draft(session: Session, mail: MailRow, new: NewDraft, *, state: DraftState,
                 actor: str, action: str, reason: str, now: datetime) -> DraftRow:
    """Add the draft for ``mail`` in ``state`` with its audit event; returns the flushed row."""
    row = DraftRow(
        mail_id=mail.id, mailbox=mail.mailbox, state=state, auto=new.auto,
        to_addr=new.to_addr, to_name=new.to_name, subject=new.subject, body=new.body,
        in_reply_to=new.in_reply_to, references=" ".join(new.references),
        message_id=new.message_id, language=new.language, macro_id=new.macro_id,
        macro_hash=new.macro_hash, rule=new.rule, variables=dict(new.variables),
        explanation=new.explanation, attempts=0, not_before=new.not_before,
        version=1, created_at=now, updated_at=now,
    )
    session.add(row)
    session.flush()
    audit.add_event(session, mail_id=mail.id, draft_id=row.id, at=now, actor=actor,
                    action=action, to_state=state, reason=reason)
    return row


def load(session: Session, draft_id: int) -> DraftRow:
    """The draft row, or ``NotFoundError``."""
    row = session.get(DraftRow, draft_id)
    if row is None:
        raise NotFoundError("draft", draft_id)
    return row


def get_draft(session: Session, draft_id: int) -> Draft:
    return to_draft(load(session, draft_id))


def first_draft_of(session: Session, mail_id: int) -> Draft | None:
    row = session.scalars(
        select(DraftRow).where(DraftRow.mail_id == mail_id).order_by(DraftRow.id).limit(1)
    ).first()
    return None if row is None else to_draft(row)


def list_drafts(session: Session, *, states: Iterable[DraftState] | None, mailbox: str | None,
                limit: int, offset: int) -> list[Draft]:
    query = select(DraftRow)
    if states is not None:
        query = query.where(DraftRow.state.in_(list(states)))
    if mailbox is not None:
        query = query.where(DraftRow.mailbox == mailbox)
    query = query.order_by(DraftRow.created_at, DraftRow.id).limit(limit).offset(offset)
    return [to_draft(row) for row in session.scalars(query)]


def count_by_state(session: Session, *, mailbox: str | None) -> dict[DraftState, int]:
    query = select(DraftRow.state, func.count()).group_by(DraftRow.state)
    if mailbox is not None:
        query = query.where(DraftRow.mailbox == mailbox)
    counts = dict.fromkeys(DraftState, 0)
    for state, count in session.execute(query):
        counts[state] = count
    return counts


def auto_replies_since(session: Session, mailbox: str, address: str, since: datetime) -> int:
    return session.scalar(
        select(func.count())
        .select_from(DraftRow)
        .where(
            DraftRow.mailbox == mailbox,
            DraftRow.to_addr == address.strip().lower(),
            DraftRow.auto.is_(True),
            DraftRow.state.not_in([S.FAILED, S.REJECTED]),
            DraftRow.created_at >= since,
        )
    ) or 0


# ---------------------------------------------------------------- change


def transition(
    session: Session,
    draft_id: int,
    to_state: DraftState,
    *,
    actor: str,
    now: datetime,
    reason: str = "",
    expected_version: int | None = None,
    subject: str | None = None,
    body: str | None = None,
    detail: dict[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
) -> Draft:
    """Move one draft to ``to_state``; see ``Store.transition`` for the rules."""
    row = load(session, draft_id)
    if expected_version is not None and row.version != expected_version:
        raise ConcurrentUpdateError("draft", draft_id)
    values = dict(changes or {})
    if subject is not None or body is not None:
        if to_state is not S.EDITED:
            raise ValueError("only an edit (to_state=edited) may change subject or body")
        if subject is not None:
            values["subject"] = subject
        if body is not None:
            values["body"] = body
    elif to_state is S.EDITED:
        raise ValueError("an edit needs a new subject or body")
    return move(session, row, to_state, actor=actor, now=now, reason=reason, values=values,
                detail=detail)


def move(session: Session, row: DraftRow, to_state: DraftState, *, actor: str, now: datetime,
         reason: str = "", values: Mapping[str, Any] | None = None,
         detail: dict[str, Any] | None = None) -> Draft:
    """Apply one transition to ``row`` as read in this transaction, guarded by its version.

    Raises ``DraftStateError`` (not allowed), ``EmptyDraftError`` (approving an empty body)
    or ``ConcurrentUpdateError`` (someone changed the row since it was read).
    """
    current, version = row.state, row.version
    check_transition(row.id, current, to_state)
    values = dict(values or {})
    if to_state in SENDABLE_STATES and not str(values.get("body", row.body)).strip():
        raise EmptyDraftError(row.id, current.value, to_state.value)
    values.update(state=to_state, version=version + 1, updated_at=now)
    result = session.execute(
        update(DraftRow)
        .where(DraftRow.id == row.id, DraftRow.version == version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not isinstance(result, CursorResult) or result.rowcount != 1:
        raise ConcurrentUpdateError("draft", row.id)
    audit.add_event(session, mail_id=row.mail_id, draft_id=row.id, at=now, actor=actor,
                    action=action_name(current, to_state), from_state=current,
                    to_state=to_state, reason=reason, detail=detail)
    session.flush()
    session.refresh(row)
    return to_draft(row)
