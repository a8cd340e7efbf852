"""The typed values that travel along the one-way flow (see shared/DESIGN.md).

    source  -> RawMail
    parse   -> InboundMail
    clean   -> CleanText
    screen  -> Verdict
    analyse -> Analysis
    decide  -> Decision
    render  -> RenderedDraft

All are frozen dataclasses: a stage returns a new value and never edits the one it got.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# ---------------------------------------------------------------- vocabulary (fixed)

CATEGORIES: tuple[str, ...] = (
    "refund", "return", "defect", "delivery", "wrong_item", "cancellation",
    "billing", "service", "question", "praise", "other",
)
TONES: tuple[str, ...] = ("neutral", "frustrated", "distressed", "abusive", "threatening")
SIGNALS: tuple[str, ...] = (
    "legal_threat", "public_threat", "misuse", "repeat_contact", "churn_threat", "urgent",
)
LANGUAGES: tuple[str, ...] = ("nl", "en")


class DraftState(StrEnum):
    """Where a reply is in its life. See ``mailbot.store.drafts.TRANSITIONS``."""

    PENDING = "pending"        # waiting for an agent
    APPROVED = "approved"      # approved as written (by an agent or by the policy)
    EDITED = "edited"          # approved after an agent changed the text
    SENDING = "sending"        # handed to the transport; outcome not yet known
    SENT = "sent"
    FAILED = "failed"          # permanent failure, reason recorded
    REJECTED = "rejected"      # an agent decided not to reply
    ESCALATED = "escalated"    # handed to a person outside the queue


class MailOutcome(StrEnum):
    """What happened to one inbound mail; every recorded mail has exactly one."""

    SKIPPED = "skipped"            # screening said: no reply (reason recorded)
    DUPLICATE = "duplicate"        # the Message-ID was handled before
    NEEDS_AGENT = "needs_agent"    # queued for a person, no draft text
    DRAFTED = "drafted"            # a draft waits for approval
    AUTO_REPLY = "auto_reply"      # a reply was approved by the policy and queued to send
    ESCALATED = "escalated"
    IGNORED = "ignored"            # the policy said to ignore it
    FAILED = "failed"              # could not be processed (reason recorded; raw kept)


# ---------------------------------------------------------------- source -> parse


@dataclass(frozen=True, slots=True)
class RawMail:
    """One message as the source delivered it.

    ``source_key`` is stable within the mailbox and is what the checkpoint records:
    ``"<uidvalidity>:<uid>"`` for IMAP, the Maildir key for Maildir.
    """

    mailbox: str
    source_key: str
    data: bytes
    uidvalidity: int | None = None
    uid: int | None = None
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class InboundMail:
    """A parsed message. Parsing never raises: problems are listed in ``defects``."""

    message_id: str | None            # without angle brackets
    subject: str
    from_name: str
    from_addr: str                    # lower-cased addr-spec, "" if missing/unparseable
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: str | None
    date: datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]   # every header, in order, decoded
    content_type: str                      # of the top-level part, e.g. "multipart/report"
    report_type: str | None                # the report-type parameter of multipart/report
    text: str                              # best plain text: text/plain, else HTML converted
    html: str | None
    attachments: tuple[Attachment, ...]
    size: int
    defects: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


@dataclass(frozen=True, slots=True)
class CleanText:
    """The customer's own words, separated from what they quoted and their signature."""

    body: str
    quoted: str = ""
    signature: str = ""
    sign_off_name: str | None = None   # the name under "Met vriendelijke groet," if any


# ---------------------------------------------------------------- screen


class SkipReason(StrEnum):
    AUTO_SUBMITTED = "auto_submitted"
    EMPTY_RETURN_PATH = "empty_return_path"
    PRECEDENCE = "precedence"
    LIST_MAIL = "list_mail"
    AUTO_RESPONSE_SUPPRESSED = "auto_response_suppressed"
    DELIVERY_REPORT = "delivery_report"
    READ_RECEIPT = "read_receipt"
    OUT_OF_OFFICE = "out_of_office"
    SYSTEM_SENDER = "system_sender"
    OWN_MAIL = "own_mail"
    NO_SENDER = "no_sender"
    SENDER_LIMIT = "sender_limit"


@dataclass(frozen=True, slots=True)
class Verdict:
    proceed: bool
    reason: SkipReason | None = None
    detail: str = ""

    @classmethod
    def ok(cls) -> Verdict:
        return cls(True)

    @classmethod
    def skip(cls, reason: SkipReason, detail: str) -> Verdict:
        return cls(False, reason, detail)


# ---------------------------------------------------------------- analyse / decide / render


@dataclass(frozen=True, slots=True)
class Analysis:
    language: str
    category: str
    category_scores: dict[str, float]
    tone: str
    tone_scores: dict[str, float]
    signals: tuple[str, ...]
    entities: dict[str, Any]
    explanation: list[str]

    @property
    def confidence(self) -> float:
        return self.category_scores.get(self.category, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "category": self.category,
            "category_scores": self.category_scores,
            "tone": self.tone,
            "tone_scores": self.tone_scores,
            "signals": list(self.signals),
            "entities": self.entities,
            "explanation": self.explanation,
        }


class Action(StrEnum):
    SEND = "send"
    DRAFT = "draft"
    ESCALATE = "escalate"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class RenderedDraft:
    subject: str
    body: str
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    rule: str
    reason: str
    macro_id: str | None = None
    macro_hash: str | None = None
    draft: RenderedDraft | None = None
    tags: tuple[str, ...] = ()
