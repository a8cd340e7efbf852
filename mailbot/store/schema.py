"""The tables of the durable queue, as SQLAlchemy 2 declarative models.

These classes are the store's private rows: callers get the frozen values of
``mailbot.store.records`` instead, so no lazy load or stale row ever escapes a transaction.

    mails           one row per inbound message, with exactly one outcome
    seen_messages   (mailbox, dedupe_key) -> first mail: the Message-ID dedupe
    checkpoints     per mailbox: UIDVALIDITY and the highest UID recorded
    drafts          reply drafts and their state (see ``drafts.TRANSITIONS``)
    audit_events    who did what to which mail/draft, when, from which state to which, why
    users           web/CLI accounts (filled in by the web layer)
    web_sessions    signed-in browsers: the SHA-256 of each session cookie, its CSRF token
    login_attempts  recent logins, good and bad, for throttling by account and by address
    leases          named, expiring locks: one worker per mailbox

Any change here needs a new file in ``migrations/versions/``; ``tests/store`` checks that
the migrated schema and these models agree.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mailbot.models import DraftState, MailOutcome
from mailbot.store.coltypes import ID, EnumText, JSONValue, UTCDateTime, enum_values

# Constraint names must be the same on every backend, or a later migration cannot name the
# constraint it alters.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Role(StrEnum):
    """What a user may do in the web page and the CLI."""

    AGENT = "agent"          # edits drafts, proposes
    APPROVER = "approver"    # approves and rejects
    ADMIN = "admin"          # manages users, macros and policy


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class MailRow(Base):
    __tablename__ = "mails"
    __table_args__ = (
        # The crash-safe replay key: the same message seen again at the same place.
        UniqueConstraint("mailbox", "source_key"),
        Index("ix_mails_mailbox_dedupe_key", "mailbox", "dedupe_key"),
        Index("ix_mails_from_addr", "from_addr"),
        Index("ix_mails_recorded_at", "recorded_at"),
        CheckConstraint(f"outcome IN ({enum_values(MailOutcome)})", name="outcome"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String)
    source_key: Mapped[str] = mapped_column(String)
    # IMAP UIDVALIDITY and UID are unsigned 32-bit: they do not fit PostgreSQL's INTEGER.
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String)
    dedupe_key: Mapped[str] = mapped_column(String)
    from_addr: Mapped[str] = mapped_column(String)
    from_name: Mapped[str] = mapped_column(String)
    subject: Mapped[str] = mapped_column(String)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    size: Mapped[int] = mapped_column(Integer)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    text: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[MailOutcome] = mapped_column(EnumText(MailOutcome))
    reason: Mapped[str] = mapped_column(Text)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSONValue())
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSONValue())
    source_done: Mapped[bool] = mapped_column(Boolean)
    answered_done: Mapped[bool] = mapped_column(Boolean)


class SeenMessageRow(Base):
    __tablename__ = "seen_messages"

    mailbox: Mapped[str] = mapped_column(String, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String, primary_key=True)
    mail_id: Mapped[int] = mapped_column(ID, ForeignKey("mails.id"))


class CheckpointRow(Base):
    __tablename__ = "checkpoints"

    mailbox: Mapped[str] = mapped_column(String, primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DraftRow(Base):
    __tablename__ = "drafts"
    __table_args__ = (
        UniqueConstraint("message_id"),
        Index("ix_drafts_mail_id", "mail_id"),
        Index("ix_drafts_state_not_before", "state", "not_before"),   # claim_sendable
        Index("ix_drafts_to_addr_created_at", "to_addr", "created_at"),  # per-sender limit
        CheckConstraint(f"state IN ({enum_values(DraftState)})", name="state"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    mail_id: Mapped[int] = mapped_column(ID, ForeignKey("mails.id"))
    mailbox: Mapped[str] = mapped_column(String)
    state: Mapped[DraftState] = mapped_column(EnumText(DraftState))
    auto: Mapped[bool] = mapped_column(Boolean)
    to_addr: Mapped[str] = mapped_column(String)
    to_name: Mapped[str] = mapped_column(String)
    subject: Mapped[str] = mapped_column(String)
    body: Mapped[str] = mapped_column(Text)
    in_reply_to: Mapped[str | None] = mapped_column(String)
    references: Mapped[str] = mapped_column(Text)          # Message-IDs, space separated
    message_id: Mapped[str] = mapped_column(String)        # deterministic, given by the caller
    language: Mapped[str | None] = mapped_column(String(8))
    macro_id: Mapped[str | None] = mapped_column(String)
    macro_hash: Mapped[str | None] = mapped_column(String)
    rule: Mapped[str | None] = mapped_column(String)
    variables: Mapped[dict[str, Any] | None] = mapped_column(JSONValue())
    explanation: Mapped[Any] = mapped_column(JSONValue(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    assigned_to: Mapped[str | None] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer)          # optimistic lock, +1 on every change
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEventRow(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_mail_id", "mail_id"),
        Index("ix_audit_events_draft_id", "draft_id"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    mail_id: Mapped[int] = mapped_column(ID, ForeignKey("mails.id"))
    draft_id: Mapped[int | None] = mapped_column(ID, ForeignKey("drafts.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String)
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[DraftState | None] = mapped_column(EnumText(DraftState))
    to_state: Mapped[DraftState | None] = mapped_column(EnumText(DraftState))
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONValue())


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("username"),
        CheckConstraint(f"role IN ({enum_values(Role)})", name="role"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    username: Mapped[str] = mapped_column(String)
    password_hash: Mapped[str] = mapped_column(String)
    role: Mapped[Role] = mapped_column(EnumText(Role))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebSessionRow(Base):
    __tablename__ = "web_sessions"
    __table_args__ = (
        Index("ix_web_sessions_user_id", "user_id"),
        Index("ix_web_sessions_expires_at", "expires_at"),
    )

    # The SHA-256 of the cookie, never the cookie itself: a copy of the database does not
    # hand out live sessions.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ID, ForeignKey("users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginAttemptRow(Base):
    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_username_at", "username", "at"),
        Index("ix_login_attempts_ip_at", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    username: Mapped[str] = mapped_column(String)          # as typed, lower-cased
    ip: Mapped[str] = mapped_column(String)
    success: Mapped[bool] = mapped_column(Boolean)


class LeaseRow(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    holder: Mapped[str] = mapped_column(String)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
