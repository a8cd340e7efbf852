"""Recording inbound mail: the outcome, the dedupe, the draft and the checkpoint together.

``record_mail`` is the one write the daemon makes per message, and it is idempotent: the
mail's place in its mailbox (mailbox, source_key) is unique, so replaying a message after a
crash returns what was recorded the first time. A second copy of a message (same Message-ID,
or same bytes when it has none) at another place is recorded as a duplicate, without a draft.
Nothing here commits; callers pass their session.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, exists, or_, select, update
from sqlalchemy.orm import Session

from mailbot.errors import NotFoundError
from mailbot.models import DraftState, MailOutcome
from mailbot.store import audit, drafts
from mailbot.store.records import Checkpoint, Mail, NewDraft, NewMail, RecordResult, to_mail
from mailbot.store.schema import CheckpointRow, DraftRow, MailRow, SeenMessageRow

# Outcomes that carry a reply draft, and those that may; the rest never do.
_NEEDS_DRAFT = frozenset({MailOutcome.DRAFTED, MailOutcome.AUTO_REPLY})
_MAY_HAVE_DRAFT = _NEEDS_DRAFT | {MailOutcome.NEEDS_AGENT, MailOutcome.ESCALATED}


def check_outcome(outcome: MailOutcome, draft: NewDraft | None) -> None:
    """Refuse an outcome that contradicts the draft (a bug in the caller, not in the mail)."""
    if draft is None and outcome in _NEEDS_DRAFT:
        raise ValueError(f"outcome {outcome.value!r} needs a draft")
    if draft is not None and outcome not in _MAY_HAVE_DRAFT:
        raise ValueError(f"outcome {outcome.value!r} cannot carry a draft")
    if draft is not None and draft.auto != (outcome is MailOutcome.AUTO_REPLY):
        raise ValueError("draft.auto=True goes with outcome 'auto_reply', and only with it")


# ---------------------------------------------------------------- checkpoint


def get_checkpoint(session: Session, mailbox: str) -> Checkpoint | None:
    row = session.get(CheckpointRow, mailbox)
    return None if row is None else Checkpoint(row.uidvalidity, row.last_uid)


def advance_checkpoint(session: Session, mailbox: str, uidvalidity: int | None,
                       last_uid: int | None, *, now: datetime) -> Checkpoint:
    """Move the checkpoint forward: never back within one UIDVALIDITY; a new UIDVALIDITY
    (the server renumbered the mailbox) replaces it outright."""
    # Locked, so two writers cannot both read the old value and one write it back smaller.
    row = session.get(CheckpointRow, mailbox, with_for_update=True)
    if row is None:
        row = CheckpointRow(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=last_uid,
                            updated_at=now)
        session.add(row)
    elif row.uidvalidity != uidvalidity:
        row.uidvalidity, row.last_uid, row.updated_at = uidvalidity, last_uid, now
    elif last_uid is not None and (row.last_uid is None or last_uid > row.last_uid):
        row.last_uid, row.updated_at = last_uid, now
    session.flush()
    return Checkpoint(row.uidvalidity, row.last_uid)


# ---------------------------------------------------------------- record


def is_recorded(session: Session, mailbox: str, source_key: str) -> bool:
    return session.scalar(
        select(exists().where(MailRow.mailbox == mailbox, MailRow.source_key == source_key))
    ) or False


def record_mail(
    session: Session,
    new: NewMail,
    *,
    outcome: MailOutcome,
    reason: str,
    analysis: dict[str, Any] | None,
    decision: dict[str, Any] | None,
    draft: NewDraft | None,
    checkpoint: tuple[int | None, int | None] | None,
    actor: str,
    now: datetime,
) -> RecordResult:
    """See ``Store.record_mail``."""
    check_outcome(outcome, draft)
    if checkpoint is not None:
        advance_checkpoint(session, new.mailbox, *checkpoint, now=now)

    existing = session.scalars(
        select(MailRow).where(MailRow.mailbox == new.mailbox,
                              MailRow.source_key == new.source_key)
    ).one_or_none()
    if existing is not None:
        return RecordResult(
            mail=to_mail(existing),
            draft=drafts.first_draft_of(session, existing.id),
            created=False,
            duplicate_of=_first_copy(session, existing),
        )

    seen = session.get(SeenMessageRow, (new.mailbox, new.dedupe_key))
    if seen is not None:
        mail = _insert_mail(session, new, outcome=MailOutcome.DUPLICATE,
                            reason=f"duplicate of mail {seen.mail_id}",
                            analysis=analysis, decision=decision, now=now)
        audit.add_event(session, mail_id=mail.id, draft_id=None, at=now, actor=actor,
                        action="recorded", reason=mail.reason,
                        detail={"outcome": MailOutcome.DUPLICATE.value, "duplicate_of": seen.mail_id})
        return RecordResult(mail=to_mail(mail), draft=None, created=True,
                            duplicate_of=seen.mail_id)

    mail = _insert_mail(session, new, outcome=outcome, reason=reason, analysis=analysis,
                        decision=decision, now=now)
    if outcome is not MailOutcome.FAILED:
        # A mail that could not be processed does not claim its Message-ID: when someone
        # puts it back in the inbox, it is handled as new instead of as a duplicate.
        session.add(SeenMessageRow(mailbox=new.mailbox, dedupe_key=new.dedupe_key,
                                   mail_id=mail.id))
    audit.add_event(session, mail_id=mail.id, draft_id=None, at=now, actor=actor,
                    action="recorded", reason=reason, detail={"outcome": outcome.value})
    draft_row = None
    if draft is not None:
        state, action = _initial_state(draft, outcome)
        draft_row = drafts.insert_draft(session, mail, draft, state=state, actor=actor,
                                        action=action, reason=reason, now=now)
    # Flush inside the unit so a lost insert race surfaces here and the unit is rerun.
    session.flush()
    return RecordResult(
        mail=to_mail(mail),
        draft=None if draft_row is None else drafts.get_draft(session, draft_row.id),
        created=True,
    )


def _initial_state(draft: NewDraft, outcome: MailOutcome) -> tuple[DraftState, str]:
    if draft.auto:
        return DraftState.APPROVED, "auto-approved"
    if outcome is MailOutcome.ESCALATED:
        return DraftState.ESCALATED, "escalated"
    return DraftState.PENDING, "drafted"


def _insert_mail(session: Session, new: NewMail, *, outcome: MailOutcome, reason: str,
                 analysis: dict[str, Any] | None, decision: dict[str, Any] | None,
                 now: datetime) -> MailRow:
    row = MailRow(
        mailbox=new.mailbox, source_key=new.source_key, uidvalidity=new.uidvalidity,
        uid=new.uid, message_id=new.message_id, dedupe_key=new.dedupe_key,
        from_addr=new.from_addr, from_name=new.from_name, subject=new.subject,
        received_at=new.received_at, recorded_at=now, size=new.size, raw=new.raw,
        text=new.text, outcome=outcome, reason=reason, analysis=analysis, decision=decision,
        source_done=False, answered_done=False,
    )
    session.add(row)
    session.flush()
    return row


def _first_copy(session: Session, mail: MailRow) -> int | None:
    """The id of the mail this one duplicates, or None if it is not a duplicate."""
    if mail.outcome is not MailOutcome.DUPLICATE:
        return None
    seen = session.get(SeenMessageRow, (mail.mailbox, mail.dedupe_key))
    return None if seen is None else seen.mail_id


# ---------------------------------------------------------------- read


def load(session: Session, mail_id: int) -> MailRow:
    row = session.get(MailRow, mail_id)
    if row is None:
        raise NotFoundError("mail", mail_id)
    return row


def get_mail(session: Session, mail_id: int) -> Mail:
    return to_mail(load(session, mail_id))


def list_mails(session: Session, *, mailbox: str | None, since: datetime | None,
               limit: int) -> list[Mail]:
    query = select(MailRow).order_by(MailRow.id).limit(limit)
    if mailbox is not None:
        query = query.where(MailRow.mailbox == mailbox)
    if since is not None:
        query = query.where(MailRow.recorded_at >= since)
    return [to_mail(row) for row in session.scalars(query)]


# ---------------------------------------------------------------- follow-up actions


def pending_source_actions(session: Session, mailbox: str, limit: int) -> list[Mail]:
    rows = session.scalars(
        select(MailRow)
        .where(MailRow.mailbox == mailbox, MailRow.source_done.is_(False))
        .order_by(MailRow.id)
        .limit(limit)
    )
    return [to_mail(row) for row in rows]


def pending_answered_flags(session: Session, mailbox: str, limit: int) -> list[Mail]:
    sent = exists().where(DraftRow.mail_id == MailRow.id, DraftRow.state == DraftState.SENT)
    rows = session.scalars(
        select(MailRow)
        .where(MailRow.mailbox == mailbox, MailRow.answered_done.is_(False), sent)
        .order_by(MailRow.id)
        .limit(limit)
    )
    return [to_mail(row) for row in rows]


def mark_source_done(session: Session, mail_id: int) -> None:
    load(session, mail_id).source_done = True


def mark_answered_done(session: Session, mail_id: int) -> None:
    load(session, mail_id).answered_done = True


# ---------------------------------------------------------------- retention


def purge_bodies(session: Session, older_than: datetime) -> int:
    """Clear raw and text of mails recorded before ``older_than`` whose drafts are all final
    (or that have none); returns how many mails were purged."""
    unfinished = exists().where(
        DraftRow.mail_id == MailRow.id, DraftRow.state.not_in(list(drafts.FINAL_STATES))
    )
    result = session.execute(
        update(MailRow)
        .where(
            MailRow.recorded_at < older_than,
            or_(MailRow.raw.is_not(None), MailRow.text.is_not(None)),
            ~unfinished,
        )
        .values(raw=None, text=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount if isinstance(result, CursorResult) else 0
