"""``Store``: the durable queue's public face.

Each method is one short transaction (retried while the database is briefly unavailable)
and returns frozen values from ``mailbot.store.records``. The work itself lives in
``mails``, ``drafts``, ``sending``, ``leases`` and ``audit``; this class only picks the kind
of transaction and supplies the clock. Errors: ``StoreError`` and its subclasses
(``NotFoundError``, ``DraftStateError``, ``ConcurrentUpdateError``); ``ValueError`` for
arguments that can never be right (a naive datetime, an outcome that contradicts the draft).

    store = Store.open("sqlite:////var/lib/mailbot/mailbot.db")
    store.migrate()
    ...
    store.close()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from mailbot.models import DraftState, MailOutcome
from mailbot.store import audit, drafts, leases, mails, migrate, sending
from mailbot.store.accounts import Accounts
from mailbot.store.coltypes import require_utc
from mailbot.store.db import Database
from mailbot.store.queue import Queue
from mailbot.store.records import (
    AuditEvent,
    Checkpoint,
    Draft,
    Mail,
    NewDraft,
    NewMail,
    RecordResult,
)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """The mail log, the draft queue, the audit trail and the worker leases.

    Thread-safe; share one per process. Build with ``Store.open(url)``.
    """

    def __init__(self, database: Database, *, clock: Clock = utc_now) -> None:
        self.db = database
        self._clock = clock
        # The web page's parts, kept out of this class so it stays about the mail path:
        # users, sessions and login attempts; the agents' queue view and its edits.
        self.accounts = Accounts(database, self._now)
        self.queue = Queue(database, self._now)

    @classmethod
    def open(cls, url: str, *, clock: Clock = utc_now, busy_timeout: float = 30.0,
             retry_for: float = 60.0, echo: bool = False) -> Store:
        """Connect lazily to ``url`` (``sqlite:///path``, ``sqlite://`` in memory, or
        ``postgresql+psycopg://user@host/db``).

        ``busy_timeout``: seconds SQLite waits for another writer's lock per attempt.
        ``retry_for``: seconds a call keeps retrying while the database is unavailable
        before it raises ``StoreError``. Does not migrate: call ``migrate()``.
        """
        return cls(Database.open(url, busy_timeout=busy_timeout, retry_for=retry_for,
                                 echo=echo), clock=clock)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.db.backend

    def close(self) -> None:
        """Release every connection. The store must not be used afterwards."""
        self.db.close()

    def _now(self) -> datetime:
        return require_utc(self._clock(), "clock()")

    # ------------------------------------------------------------ schema

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema up to ``revision``; safe to call at every start, by several
        workers at once (PostgreSQL serialises them with an advisory lock)."""
        with self.db.write_connection() as connection:
            migrate.upgrade(connection, revision)

    def schema_revision(self) -> str | None:
        """The alembic revision the database is at, None before the first migration."""
        with self.db.engine.connect() as connection:
            return migrate.current_revision(connection)

    def schema_diff(self) -> list[Any]:
        """What alembic's autogenerate finds between the database and the models:
        ``[]`` after ``migrate()``, unless a model changed without a migration."""
        with self.db.engine.connect() as connection:
            return migrate.schema_diff(connection)

    # ------------------------------------------------------------ mails and checkpoints

    def get_checkpoint(self, mailbox: str) -> Checkpoint | None:
        """How far ``mailbox`` was read: ``Checkpoint(uidvalidity, last_uid)``, or None
        before the first mail was recorded there."""
        return self.db.read(lambda s: mails.get_checkpoint(s, mailbox), what="get_checkpoint")

    def advance_checkpoint(self, mailbox: str, uidvalidity: int | None,
                           last_uid: int | None) -> Checkpoint:
        """Move the checkpoint without recording a mail (e.g. past UIDs that vanished).
        Never moves back within one UIDVALIDITY; a new UIDVALIDITY replaces it."""
        now = self._now()
        return self.db.write(
            lambda s: mails.advance_checkpoint(s, mailbox, uidvalidity, last_uid, now=now),
            what="advance_checkpoint", retry_conflicts=True,
        )

    def is_recorded(self, mailbox: str, source_key: str) -> bool:
        """True if the message at ``source_key`` in ``mailbox`` has an outcome already;
        the daemon asks before parsing, so a replay after a crash costs one query."""
        return self.db.read(lambda s: mails.is_recorded(s, mailbox, source_key),
                            what="is_recorded")

    def record_mail(
        self,
        new: NewMail,
        *,
        outcome: MailOutcome,
        reason: str = "",
        analysis: dict[str, Any] | None = None,
        decision: dict[str, Any] | None = None,
        draft: NewDraft | None = None,
        checkpoint: tuple[int | None, int | None] | None = None,
        actor: str = "mailbot",
    ) -> RecordResult:
        """Record one inbound mail with its outcome, in one transaction.

        - Already recorded at (mailbox, source_key): nothing changes; returns the first
          recording with ``created=False``. Safe to call again after a crash.
        - Its dedupe key was seen in this mailbox: recorded with outcome ``duplicate``
          (reason ``"duplicate of mail N"``, ``duplicate_of=N``) and no draft.
        - Otherwise: recorded with ``outcome``; the draft, if any, starts ``approved`` when
          ``draft.auto`` (outcome must be ``auto_reply``), ``escalated`` for outcome
          ``escalated``, else ``pending``; audit events "recorded" and "drafted" /
          "auto-approved" / "escalated" carry ``reason``.

        In every case ``checkpoint=(uidvalidity, uid)`` advances the mailbox's checkpoint
        in the same transaction. Mails with outcome ``failed`` do not claim their dedupe key,
        so a copy put back in the inbox is processed as new.

        Returns ``RecordResult(mail, draft, created, duplicate_of)``.
        """
        now = self._now()
        return self.db.write(
            lambda s: mails.record_mail(
                s, new, outcome=outcome, reason=reason, analysis=analysis, decision=decision,
                draft=draft, checkpoint=checkpoint, actor=actor, now=now,
            ),
            what="record_mail",
            # Two workers inserting the same mail or Message-ID: the loser reruns and finds
            # the winner's row, which makes it a replay or a duplicate.
            retry_conflicts=True,
        )

    def get_mail(self, mail_id: int) -> Mail:
        """The mail, or ``NotFoundError``."""
        return self.db.read(lambda s: mails.get_mail(s, mail_id), what="get_mail")

    def list_mails(self, *, mailbox: str | None = None, since: datetime | None = None,
                   limit: int = 1000) -> list[Mail]:
        """Recorded mails (of ``mailbox``, recorded at or after ``since``), oldest first."""
        cutoff = None if since is None else require_utc(since, "since")
        return self.db.read(lambda s: mails.list_mails(s, mailbox=mailbox, since=cutoff, limit=limit),
                            what="list_mails")

    def pending_source_actions(self, mailbox: str, limit: int = 100) -> list[Mail]:
        """Mails of ``mailbox`` whose post-handling action (IMAP move/flag, Maildir move) has
        not been done yet, oldest first. Call ``mark_source_done`` after doing it."""
        return self.db.read(lambda s: mails.pending_source_actions(s, mailbox, limit),
                            what="pending_source_actions")

    def mark_source_done(self, mail_id: int) -> None:
        self.db.write(lambda s: mails.mark_source_done(s, mail_id), what="mark_source_done")

    def pending_answered_flags(self, mailbox: str, limit: int = 100) -> list[Mail]:
        """Mails of ``mailbox`` with a sent reply whose original is not yet flagged
        ``\\Answered``, oldest first. Call ``mark_answered_done`` after flagging."""
        return self.db.read(lambda s: mails.pending_answered_flags(s, mailbox, limit),
                            what="pending_answered_flags")

    def mark_answered_done(self, mail_id: int) -> None:
        self.db.write(lambda s: mails.mark_answered_done(s, mail_id),
                      what="mark_answered_done")

    def purge_bodies(self, older_than: datetime) -> int:
        """Retention: forget ``raw`` and ``text`` of mails recorded before ``older_than``
        whose drafts are all final (sent/rejected) or that have none. Returns the count.
        Headers, outcome, analysis, drafts and the audit trail stay."""
        cutoff = require_utc(older_than, "older_than")
        return self.db.write(lambda s: mails.purge_bodies(s, cutoff), what="purge_bodies")

    # ------------------------------------------------------------ drafts

    def get_draft(self, draft_id: int) -> Draft:
        """The draft, or ``NotFoundError``."""
        return self.db.read(lambda s: drafts.get_draft(s, draft_id), what="get_draft")

    def draft_of_mail(self, mail_id: int) -> Draft | None:
        """The mail's draft (a mail gets at most one), or None."""
        return self.db.read(lambda s: drafts.first_draft_of(s, mail_id), what="draft_of_mail")

    def list_drafts(self, states: Iterable[DraftState] | None = None,
                    mailbox: str | None = None, limit: int = 100,
                    offset: int = 0) -> list[Draft]:
        """Drafts in any of ``states`` (all when None), oldest first, one page."""
        wanted = None if states is None else list(states)
        return self.db.read(
            lambda s: drafts.list_drafts(s, states=wanted, mailbox=mailbox, limit=limit,
                                         offset=offset),
            what="list_drafts",
        )

    def count_by_state(self, mailbox: str | None = None) -> dict[DraftState, int]:
        """``{state: number of drafts}`` with every state present (0 when none)."""
        return self.db.read(lambda s: drafts.count_by_state(s, mailbox=mailbox),
                            what="count_by_state")

    def auto_replies_since(self, mailbox: str, address: str, since: datetime) -> int:
        """How many automatic replies went, or are going, to ``address`` (case-insensitive)
        from ``mailbox`` since ``since``: drafts with auto=True in any state but failed or
        rejected. The screen uses it for the per-sender limit."""
        since = require_utc(since, "since")
        return self.db.read(lambda s: drafts.auto_replies_since(s, mailbox, address, since),
                            what="auto_replies_since")

    def transition(
        self,
        draft_id: int,
        to_state: DraftState,
        *,
        actor: str,
        reason: str = "",
        expected_version: int | None = None,
        subject: str | None = None,
        body: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Draft:
        """Move a draft along ``drafts.TRANSITIONS`` and record who did it and why.

        ``edited`` needs a new ``subject`` and/or ``body`` (and only ``edited`` takes them).
        Approving (``approved``/``edited``) an empty body raises ``EmptyDraftError`` ("edit the
        draft first"). Pass the ``version`` you showed the user as ``expected_version``: if the
        draft changed since, ``ConcurrentUpdateError``. Even without it, of two concurrent
        changes exactly one wins; the other gets ``ConcurrentUpdateError`` or, if it ran
        after the first committed, ``DraftStateError``. Returns the draft as it now is.
        """
        now = self._now()
        return self.db.write(
            lambda s: drafts.transition(
                s, draft_id, to_state, actor=actor, now=now, reason=reason,
                expected_version=expected_version, subject=subject, body=body, detail=detail,
            ),
            what="transition",
        )

    def audit_for_draft(self, draft_id: int) -> list[AuditEvent]:
        """The draft's events, oldest first; ``NotFoundError`` for an unknown draft."""
        def unit(session: Session) -> list[AuditEvent]:
            drafts.load(session, draft_id)
            return audit.events_for_draft(session, draft_id)
        return self.db.read(unit, what="audit_for_draft")

    def audit_for_mail(self, mail_id: int) -> list[AuditEvent]:
        """The mail's events and its drafts', oldest first; ``NotFoundError`` if unknown."""
        def unit(session: Session) -> list[AuditEvent]:
            mails.load(session, mail_id)
            return audit.events_for_mail(session, mail_id)
        return self.db.read(unit, what="audit_for_mail")

    # ------------------------------------------------------------ sending

    def claim_sendable(self, worker: str, now: datetime, limit: int = 10) -> list[Draft]:
        """Atomically take up to ``limit`` approved/edited drafts that are due
        (``not_before`` empty or <= ``now``) and move them to ``sending`` for ``worker``.
        No draft is ever handed to two workers. Oldest first; may return ``[]``."""
        now = require_utc(now, "now")
        return self.db.write(lambda s: sending.claim_sendable(s, worker, now, limit),
                             what="claim_sendable")

    def mark_sent(self, draft_id: int, *, actor: str) -> Draft:
        """sending -> sent; sets ``sent_at``."""
        now = self._now()
        return self.db.write(lambda s: sending.mark_sent(s, draft_id, actor=actor, now=now),
                             what="mark_sent")

    def mark_failed(self, draft_id: int, reason: str, code: int | None, *,
                    actor: str) -> Draft:
        """sending -> failed (permanent): records the relay's reason and SMTP code."""
        now = self._now()
        return self.db.write(
            lambda s: sending.mark_failed(s, draft_id, reason, code, actor=actor, now=now),
            what="mark_failed",
        )

    def retry_later(self, draft_id: int, reason: str, code: int | None,
                    not_before: datetime, *, actor: str) -> Draft:
        """sending -> approved with ``attempts + 1``; claimable again from ``not_before``."""
        now = self._now()
        due = require_utc(not_before, "not_before")
        return self.db.write(
            lambda s: sending.retry_later(s, draft_id, reason, code, due, actor=actor,
                                          now=now),
            what="retry_later",
        )

    def stuck_sending(self, older_than: datetime) -> list[Draft]:
        """Drafts claimed before ``older_than`` and still ``sending``: their worker died
        mid-send. Look for their Message-ID in the Sent folder, then ``mark_sent`` or
        ``retry_later``."""
        cutoff = require_utc(older_than, "older_than")
        return self.db.read(lambda s: sending.stuck_sending(s, cutoff), what="stuck_sending")

    # ------------------------------------------------------------ leases

    def acquire_lease(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take or renew lease ``name`` for ``ttl``; False while another holder has it.
        Renew well before the TTL runs out."""
        now = self._now()
        return self.db.write(lambda s: leases.acquire(s, name, holder, ttl, now=now),
                             what="acquire_lease", retry_conflicts=True)

    def release_lease(self, name: str, holder: str) -> bool:
        """Give lease ``name`` up; False if ``holder`` no longer held it."""
        return self.db.write(lambda s: leases.release(s, name, holder),
                             what="release_lease")
