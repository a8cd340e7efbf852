"""The audit trail: one row per thing that happened to a mail or a draft.

Events are written in the same transaction as the change they describe, so the trail and the
data never disagree. Nothing here commits; callers pass their session.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.models import DraftState
from mailbot.store.records import AuditEvent, to_event
from mailbot.store.schema import AuditEventRow


def add_event(
    session: Session,
    *,
    mail_id: int,
    draft_id: int | None,
    at: datetime,
    actor: str,
    action: str,
    from_state: DraftState | None = None,
    to_state: DraftState | None = None,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one event to ``session`` (flushed with the change it belongs to)."""
    session.add(AuditEventRow(
        mail_id=mail_id, draft_id=draft_id, at=at, actor=actor, action=action,
        from_state=from_state, to_state=to_state, reason=reason, detail=detail,
    ))


def events_for_mail(session: Session, mail_id: int) -> list[AuditEvent]:
    """Every event of the mail and of its drafts, oldest first."""
    rows = session.scalars(
        select(AuditEventRow).where(AuditEventRow.mail_id == mail_id).order_by(AuditEventRow.id)
    )
    return [to_event(row) for row in rows]


def events_for_draft(session: Session, draft_id: int) -> list[AuditEvent]:
    """Every event of one draft, oldest first."""
    rows = session.scalars(
        select(AuditEventRow)
        .where(AuditEventRow.draft_id == draft_id)
        .order_by(AuditEventRow.id)
    )
    return [to_event(row) for row in rows]
