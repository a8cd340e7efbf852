"""Handing approved drafts to the sender, and recording what the relay said.

    claim_sendable   approved/edited, due           -> sending (claimed_by, claimed_at)
    mark_sent        sending                        -> sent (sent_at)
    mark_failed      sending                        -> failed (last_error, smtp_code)
    retry_later      sending                        -> approved (not_before, attempts + 1)
    stuck_sending    drafts left in sending by a worker that died mid-send

Claims are exclusive: on PostgreSQL the candidate rows are locked with
``FOR UPDATE SKIP LOCKED`` (a second worker skips them instead of waiting); on SQLite the
write transaction's ``BEGIN IMMEDIATE`` lets one claimer in at a time. Nothing here commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailbot.models import DraftState
from mailbot.store import drafts
from mailbot.store.records import Draft, to_draft
from mailbot.store.schema import DraftRow


def claim_sendable(session: Session, worker: str, now: datetime, limit: int) -> list[Draft]:
    """Move up to ``limit`` due drafts to sending for ``worker``, oldest first."""
    candidates = session.scalars(
        select(DraftRow)
        .where(
            DraftRow.state.in_(list(drafts.SENDABLE_STATES)),
            or_(DraftRow.not_before.is_(None), DraftRow.not_before <= now),
        )
        .order_by(DraftRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    return [
        drafts.move(session, row, DraftState.SENDING, actor=worker, now=now,
                    values={"claimed_by": worker, "claimed_at": now})
        for row in candidates
    ]


def mark_sent(session: Session, draft_id: int, *, actor: str, now: datetime) -> Draft:
    return drafts.transition(session, draft_id, DraftState.SENT, actor=actor, now=now,
                             changes={"sent_at": now, "last_error": None, "smtp_code": None})


def mark_failed(session: Session, draft_id: int, reason: str, code: int | None, *, actor: str,
                now: datetime) -> Draft:
    return drafts.transition(
        session, draft_id, DraftState.FAILED, actor=actor, now=now, reason=reason,
        detail={"smtp_code": code},
        changes={"last_error": reason, "smtp_code": code, "attempts": DraftRow.attempts + 1},
    )


def retry_later(session: Session, draft_id: int, reason: str, code: int | None,
                not_before: datetime, *, actor: str, now: datetime) -> Draft:
    return drafts.transition(
        session, draft_id, DraftState.APPROVED, actor=actor, now=now, reason=reason,
        detail={"smtp_code": code, "not_before": not_before.isoformat()},
        changes={"last_error": reason, "smtp_code": code, "not_before": not_before,
                 "attempts": DraftRow.attempts + 1},
    )


def stuck_sending(session: Session, older_than: datetime) -> list[Draft]:
    rows = session.scalars(
        select(DraftRow)
        .where(DraftRow.state == DraftState.SENDING, DraftRow.claimed_at < older_than)
        .order_by(DraftRow.claimed_at, DraftRow.id)
    )
    return [to_draft(row) for row in rows]
