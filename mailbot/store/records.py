"""The values that go into the store and come out of it.

Everything the ``Store`` returns is a frozen dataclass built inside the transaction that read
it: a snapshot, safe to pass between threads and to keep after the call. What goes in
(``NewMail``, ``NewDraft``) is checked when it is built, so a bad value fails at the caller,
not halfway through a transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from mailbot.models import DraftState, MailOutcome
from mailbot.store.coltypes import require_utc
from mailbot.store.schema import AuditEventRow, DraftRow, MailRow


def dedupe_key_for(message_id: str | None, raw: bytes | None) -> str:
    """The key two copies of one message share: the Message-ID, else a hash of the bytes.

    >>> dedupe_key_for("<abc@example.com>", None)
    'abc@example.com'
    >>> dedupe_key_for(None, b"x")[:15]
    'sha256:2d711642'
    """
    if message_id and message_id.strip(" <>"):
        return message_id.strip().strip("<>")
    if raw is None:
        raise ValueError("a mail without Message-ID needs its raw bytes to compute a dedupe key")
    return "sha256:" + hashlib.sha256(raw).hexdigest()


# ---------------------------------------------------------------- in


@dataclass(frozen=True, slots=True)
class NewMail:
    """An inbound message to record. ``dedupe_key`` is computed when left empty."""

    mailbox: str
    source_key: str               # "<uidvalidity>:<uid>" for IMAP, the Maildir key for Maildir
    from_addr: str
    subject: str
    size: int
    raw: bytes | None
    from_name: str = ""
    uidvalidity: int | None = None
    uid: int | None = None
    message_id: str | None = None  # without angle brackets
    received_at: datetime | None = None
    text: str | None = None        # the customer's own words, cleaned
    dedupe_key: str = ""

    def __post_init__(self) -> None:
        if not self.mailbox or not self.source_key:
            raise ValueError("a mail needs a mailbox and a source_key")
        if not self.dedupe_key:
            object.__setattr__(self, "dedupe_key", dedupe_key_for(self.message_id, self.raw))
        if self.received_at is not None:
            object.__setattr__(self, "received_at", require_utc(self.received_at, "received_at"))


@dataclass(frozen=True, slots=True)
class NewDraft:
    """A reply to store with its mail. ``to_addr`` is lower-cased (the per-sender limit
    compares addresses); ``message_id`` is the deterministic Message-ID the reply will carry.
    """

    to_addr: str
    subject: str
    body: str
    message_id: str
    to_name: str = ""
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    language: str | None = None
    macro_id: str | None = None
    macro_hash: str | None = None
    rule: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    explanation: Any = None        # JSON: why this macro and this action
    auto: bool = False             # approved by the policy: goes out without a person
    not_before: datetime | None = None

    def __post_init__(self) -> None:
        if not self.to_addr or not self.message_id:
            raise ValueError("a draft needs to_addr and message_id")
        if self.auto and not self.body.strip():
            raise ValueError("an automatic reply needs a body")
        object.__setattr__(self, "to_addr", self.to_addr.strip().lower())
        if self.not_before is not None:
            object.__setattr__(self, "not_before", require_utc(self.not_before, "not_before"))


# ---------------------------------------------------------------- out


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far a mailbox has been read. ``last_uid`` is None for sources without UIDs."""

    uidvalidity: int | None
    last_uid: int | None


@dataclass(frozen=True, slots=True)
class Mail:
    id: int
    mailbox: str
    source_key: str
    uidvalidity: int | None
    uid: int | None
    message_id: str | None
    dedupe_key: str
    from_addr: str
    from_name: str
    subject: str
    received_at: datetime | None
    recorded_at: datetime
    size: int
    raw: bytes | None               # None once retention purged it
    text: str | None
    outcome: MailOutcome
    reason: str
    analysis: dict[str, Any] | None
    decision: dict[str, Any] | None
    source_done: bool
    answered_done: bool


@dataclass(frozen=True, slots=True)
class Draft:
    id: int
    mail_id: int
    mailbox: str
    state: DraftState
    auto: bool
    to_addr: str
    to_name: str
    subject: str
    body: str
    in_reply_to: str | None
    references: tuple[str, ...]
    message_id: str
    language: str | None
    macro_id: str | None
    macro_hash: str | None
    rule: str | None
    variables: dict[str, Any]
    explanation: Any
    attempts: int                   # send attempts that did not succeed
    not_before: datetime | None
    last_error: str | None
    smtp_code: int | None
    assigned_to: str | None
    version: int                    # pass back as expected_version to guard an edit
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    claimed_by: str | None
    claimed_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    mail_id: int
    draft_id: int | None
    at: datetime
    actor: str
    action: str                     # "recorded", "drafted", "approved", "claimed", "sent", ...
    from_state: DraftState | None
    to_state: DraftState | None
    reason: str
    detail: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What ``record_mail`` did.

    ``created`` is False when the mail was already recorded (a replay): ``mail`` and ``draft``
    are then the rows from the first time, unchanged. ``duplicate_of`` is the id of the first
    mail with the same dedupe key when this one was recorded as a duplicate.
    """

    mail: Mail
    draft: Draft | None
    created: bool
    duplicate_of: int | None = None


# ---------------------------------------------------------------- row -> value


_MAIL_FIELDS = tuple(f.name for f in fields(Mail))
_DRAFT_FIELDS = tuple(f.name for f in fields(Draft) if f.name not in ("references", "variables"))
_EVENT_FIELDS = tuple(f.name for f in fields(AuditEvent))


def to_mail(row: MailRow) -> Mail:
    return Mail(**{name: getattr(row, name) for name in _MAIL_FIELDS})


def to_draft(row: DraftRow) -> Draft:
    return Draft(
        references=tuple(row.references.split()),
        variables=row.variables or {},
        **{name: getattr(row, name) for name in _DRAFT_FIELDS},
    )


def to_event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(**{name: getattr(row, name) for name in _EVENT_FIELDS})
