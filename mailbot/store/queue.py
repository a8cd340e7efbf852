"""The agents' view of the drafts: filtered queue, customer history, and the changes a person
makes that keep a draft's state (saving text, re-rendering with another macro, assigning).

Reached as ``store.queue`` (a ``Queue``). The filters on category, tone, signals and language
read the mail's stored analysis JSON with SQLAlchemy's JSON index operators, which compile
to ``json_extract`` on SQLite and ``->>`` on PostgreSQL; no copy of the analysis is kept in
other columns, so there is nothing to keep in step.

State-keeping changes follow the same rules as ``drafts.move``: ``WHERE version = :seen``
(two people at once: one wins, the other gets ``ConcurrentUpdateError``), version + 1, and an
audit event in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import CursorResult, Select, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from mailbot.errors import ConcurrentUpdateError, DraftStateError
from mailbot.models import DraftState, MailOutcome
from mailbot.store import audit, drafts
from mailbot.store.db import Database
from mailbot.store.records import AuditEvent, Draft, to_draft, to_event
from mailbot.store.schema import AuditEventRow, DraftRow, MailRow

S = DraftState

# Saving text or re-rendering: allowed while nobody has decided yet, or after an approval
# that has not been claimed by the sender (the draft then needs approving again).
REVISABLE: Final = frozenset({S.PENDING, S.ESCALATED, S.APPROVED, S.EDITED})
ASSIGNABLE: Final = frozenset({S.PENDING, S.ESCALATED, S.APPROVED, S.EDITED, S.FAILED})
OPEN_STATES: Final = (S.PENDING, S.ESCALATED, S.FAILED)   # waiting for a person


@dataclass(frozen=True, slots=True)
class MailSummary:
    """A mail without its bytes and text: enough for a queue row."""

    id: int
    mailbox: str
    from_addr: str
    from_name: str
    subject: str
    message_id: str | None
    received_at: datetime | None
    recorded_at: datetime
    outcome: MailOutcome
    reason: str
    analysis: dict[str, Any] | None

    @property
    def arrived_at(self) -> datetime:
        return self.received_at or self.recorded_at


@dataclass(frozen=True, slots=True)
class QueueItem:
    mail: MailSummary
    draft: Draft


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """An earlier (or later) mail from the same customer or thread, with our reply if any."""

    mail: MailSummary
    draft: Draft | None
    in_thread: bool


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """What the queue shows. ``None`` means "any"; ``assigned_to=""`` means unassigned."""

    states: tuple[DraftState, ...] | None = OPEN_STATES
    mailbox: str | None = None
    category: str | None = None
    tone: str | None = None
    signal: str | None = None
    language: str | None = None
    assigned_to: str | None = None
    search: str = ""


@dataclass(frozen=True, slots=True)
class QueuePage:
    items: list[QueueItem]
    total: int                      # matching drafts, over all pages


_SUMMARY_COLUMNS = (
    MailRow.id, MailRow.mailbox, MailRow.from_addr, MailRow.from_name, MailRow.subject,
    MailRow.message_id, MailRow.received_at, MailRow.recorded_at, MailRow.outcome,
    MailRow.reason, MailRow.analysis,
)


def _summary(values: Iterable[Any]) -> MailSummary:
    return MailSummary(*values)


def _conditions(filt: QueueFilter) -> list[ColumnElement[bool]]:
    analysis = MailRow.analysis
    where: list[ColumnElement[bool]] = []
    if filt.states is not None:
        where.append(DraftRow.state.in_(list(filt.states)))
    if filt.mailbox:
        where.append(DraftRow.mailbox == filt.mailbox)
    if filt.category:
        where.append(analysis["category"].as_string() == filt.category)
    if filt.tone:
        where.append(analysis["tone"].as_string() == filt.tone)
    if filt.language:
        where.append(func.coalesce(analysis["language"].as_string(), DraftRow.language)
                     == filt.language)
    if filt.signal:
        # The signals list as JSON text contains the quoted name; names are [a-z_] only
        # (the web layer checks), so no LIKE wildcard or quote can sneak in.
        where.append(analysis["signals"].as_string().contains(f'"{filt.signal}"', autoescape=True))
    if filt.assigned_to is not None:
        where.append(DraftRow.assigned_to.is_(None) if filt.assigned_to == ""
                     else DraftRow.assigned_to == filt.assigned_to)
    term = filt.search.strip().lower()
    if term:
        # Sender, subject, or anything in the customer's words (order numbers live there).
        where.append(or_(*(
            func.lower(column).contains(term, autoescape=True)
            for column in (MailRow.from_addr, MailRow.from_name, MailRow.subject,
                           DraftRow.to_addr, MailRow.text)
        )))
    return where


def _queue_query(filt: QueueFilter) -> Select[Any]:
    return (select(DraftRow, *_SUMMARY_COLUMNS)
            .join(MailRow, MailRow.id == DraftRow.mail_id)
            .where(*_conditions(filt)))


def _oldest_first(query: Select[Any]) -> Select[Any]:
    return query.order_by(func.coalesce(MailRow.received_at, MailRow.recorded_at), DraftRow.id)


class Queue:
    """Read the queue as agents see it, and make the changes that keep a draft's state."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self._db = db
        self._now = now

    # ------------------------------------------------------------ reading

    def search(self, filt: QueueFilter, *, limit: int = 100, offset: int = 0) -> QueuePage:
        """One page of matching drafts with their mails, the customer who waited longest
        first, and how many match in all."""
        def unit(session: Session) -> QueuePage:
            rows = session.execute(_oldest_first(_queue_query(filt)).limit(limit).offset(offset))
            items = [QueueItem(_summary(row[1:]), to_draft(row[0])) for row in rows]
            total = session.scalar(
                select(func.count()).select_from(DraftRow)
                .join(MailRow, MailRow.id == DraftRow.mail_id).where(*_conditions(filt))
            ) or 0
            return QueuePage(items, total)

        return self._db.read(unit, what="queue_search")

    def ids(self, filt: QueueFilter, *, limit: int = 5000) -> list[int]:
        """The matching draft ids in queue order (for "next" and "previous")."""
        def unit(session: Session) -> list[int]:
            query = _oldest_first(select(DraftRow.id).join(MailRow, MailRow.id == DraftRow.mail_id)
                                  .where(*_conditions(filt)))
            return list(session.scalars(query.limit(limit)))
        return self._db.read(unit, what="queue_ids")

    def item(self, draft_id: int) -> QueueItem:
        """One draft with its mail summary, or ``NotFoundError``."""
        def unit(session: Session) -> QueueItem:
            row = drafts.load(session, draft_id)
            mail = session.execute(select(*_SUMMARY_COLUMNS).where(MailRow.id == row.mail_id)).one()
            return QueueItem(_summary(mail), to_draft(row))
        return self._db.read(unit, what="queue_item")

    def history(self, draft: Draft, *, limit: int = 30) -> list[HistoryItem]:
        """The customer's other mails (newest first) and every mail or reply of this thread
        (by Message-ID in the draft's References), each with our reply if there was one."""
        refs = [r.strip("<>") for r in draft.references if r]
        ours = [r if r.startswith("<") else f"<{r}>" for r in draft.references]

        def unit(session: Session) -> list[HistoryItem]:
            thread_mail_ids = set(session.scalars(
                select(MailRow.id).where(MailRow.message_id.in_(refs))) if refs else [])
            thread_mail_ids |= set(session.scalars(
                select(DraftRow.mail_id).where(DraftRow.message_id.in_(ours))) if ours else [])
            query = (
                select(*_SUMMARY_COLUMNS, DraftRow)
                .outerjoin(DraftRow, DraftRow.mail_id == MailRow.id)
                .where(MailRow.id != draft.mail_id,
                       or_(MailRow.from_addr == draft.to_addr, MailRow.id.in_(thread_mail_ids)))
                .order_by(func.coalesce(MailRow.received_at, MailRow.recorded_at).desc(),
                          MailRow.id.desc())
                .limit(limit)
            )
            out = []
            for row in session.execute(query):
                mail = _summary(row[:-1])
                out.append(HistoryItem(mail, None if row[-1] is None else to_draft(row[-1]),
                                       mail.id in thread_mail_ids))
            return out

        return self._db.read(unit, what="queue_history")

    def last_event_id(self) -> int:
        """The newest audit event's id (0 when there is none): cheap, so the live page can
        ask it every second."""
        return self._db.read(lambda s: s.scalar(select(func.max(AuditEventRow.id))) or 0,
                             what="last_event_id")

    def events_after(self, after_id: int, *, limit: int = 500) -> list[AuditEvent]:
        """Audit events newer than ``after_id``, oldest first."""
        def unit(session: Session) -> list[AuditEvent]:
            rows = session.scalars(select(AuditEventRow).where(AuditEventRow.id > after_id)
                                   .order_by(AuditEventRow.id).limit(limit))
            return [to_event(row) for row in rows]
        return self._db.read(unit, what="events_after")

    # ------------------------------------------------------------ changes that keep the state

    def revise(self, draft_id: int, *, actor: str, action: str, expected_version: int | None,
               subject: str | None = None, body: str | None = None,
               macro: Mapping[str, Any] | None = None, reason: str = "",
               detail: dict[str, Any] | None = None) -> Draft:
        """New text for a draft that is not yet sent, without approving it.

        ``action`` is the audit verb ("revised" for a person's text, "rerendered" for a
        macro's); ``macro`` may set ``macro_id``, ``macro_hash`` and ``variables``. A draft
        that was approved goes back to pending: what is sent must be approved as it reads.
        """
        values: dict[str, Any] = {}
        if subject is not None:
            values["subject"] = subject
        if body is not None:
            values["body"] = body
        for key, value in (macro or {}).items():
            if key not in ("macro_id", "macro_hash", "variables"):
                raise ValueError(f"revise() cannot set {key!r}")
            values[key] = value
        if not values:
            raise ValueError("revise() needs something to change")
        now = self._now()

        def unit(session: Session) -> Draft:
            row = drafts.load(session, draft_id)
            if row.state not in REVISABLE:
                raise DraftStateError(draft_id, row.state.value, action)
            to_state = S.PENDING if row.state in drafts.SENDABLE_STATES else row.state
            return _guarded_update(session, row, expected_version, to_state, values, actor=actor,
                                   action=action, reason=reason, detail=detail, now=now)

        return self._db.write(unit, what="revise_draft")

    def assign(self, draft_id: int, assignee: str | None, *, actor: str,
               expected_version: int | None, reason: str = "") -> Draft:
        """Give the draft to a colleague (None: to nobody); the state does not change."""
        now = self._now()

        def unit(session: Session) -> Draft:
            row = drafts.load(session, draft_id)
            if row.state not in ASSIGNABLE:
                raise DraftStateError(draft_id, row.state.value, "assigned")
            return _guarded_update(session, row, expected_version, row.state,
                                   {"assigned_to": assignee}, actor=actor,
                                   action="assigned" if assignee else "unassigned",
                                   reason=reason, detail={"assignee": assignee}, now=now)

        return self._db.write(unit, what="assign_draft")


def _guarded_update(session: Session, row: DraftRow, expected_version: int | None,
                    to_state: DraftState, values: dict[str, Any], *, actor: str, action: str,
                    reason: str, detail: dict[str, Any] | None, now: datetime) -> Draft:
    current, version = row.state, row.version
    if expected_version is not None and version != expected_version:
        raise ConcurrentUpdateError("draft", row.id)
    if to_state is not current:
        drafts.check_transition(row.id, current, to_state)
    result = session.execute(
        update(DraftRow)
        .where(DraftRow.id == row.id, DraftRow.version == version)
        .values(**values, state=to_state, version=version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if not isinstance(result, CursorResult) or result.rowcount != 1:
        raise ConcurrentUpdateError("draft", row.id)
    audit.add_event(session, mail_id=row.mail_id, draft_id=row.id, at=now, actor=actor,
                    action=action, from_state=current, to_state=to_state, reason=reason,
                    detail=detail)
    session.flush()
    session.refresh(row)
    return to_draft(row)
