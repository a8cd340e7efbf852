"""Building reply messages. Pure: no I/O, no clock unless ``date`` is left out.

Every value that reaches a header passes through ``header_text`` (or the Message-ID and
address checks), so CR, LF and other control characters from a customer's name or subject
can never start a header of their own.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from mailbot.errors import MailbotError

MAX_REFERENCES = 20

_EMPTY_SUBJECT = {"nl": "uw bericht", "en": "your message"}

# "Re:", "RE :", "Re[2]:", "Re(2):", "AW:", "Antw:", "Antwoord:", "Sv:", "Ref:", repeated.
_REPLY_PREFIX = re.compile(
    r"^(?:\s*(?:re|aw|antw|antwoord|sv|ref)\s*(?:\[\d+\]|\(\d+\))?\s*:)+\s*", re.IGNORECASE
)
_ADDR_SPEC = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+$")
_MSG_ID = re.compile(r"^[^<>\s@]+@[^<>\s@]+$")
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$")
_SPACES = re.compile(r"\s+")


class InvalidAddressError(MailbotError, ValueError):
    """An address for a reply header is not a plain ``local@domain``."""

    def __init__(self, field: str, address: str) -> None:
        self.field = field
        self.address = address
        super().__init__(f"invalid e-mail address for {field}: {address!r}")


def make_message_id(mailbox: str, dedupe_key: str, domain: str) -> str:
    """The reply's Message-ID: the same inbound mail always gets the same one.

    >>> make_message_id("support", "abc@example.com", "shop.example")
    '<mailbot.2ff9950bf820585932634d69@shop.example>'
    """
    domain = domain.strip()
    if not domain or not _MSG_ID.match(f"x@{domain}"):
        raise ValueError(f"invalid domain for a Message-ID: {domain!r}")
    digest = hashlib.sha256(f"{mailbox}\0{dedupe_key}".encode()).hexdigest()[:24]
    return f"<mailbot.{digest}@{domain}>"


def reply_subject(original: str, language: str) -> str:
    """``Re: `` once, whatever reply prefixes the original piled up.

    >>> reply_subject("Re: RE: Antw: Kapotte stoel", "nl")
    'Re: Kapotte stoel'
    >>> reply_subject("Re[2]: order 1234", "en")
    'Re: order 1234'
    >>> reply_subject("  ", "nl")
    'Re: uw bericht'
    """
    subject = _REPLY_PREFIX.sub("", header_text(original)).strip()
    return "Re: " + (subject or _EMPTY_SUBJECT.get(language, _EMPTY_SUBJECT["en"]))


def header_text(value: str) -> str:
    """``value`` made safe for a header: control characters (CR, LF, NUL, TAB, the C1 set,
    line and paragraph separators) become spaces, runs of spaces collapse.

    >>> header_text("Evil\\r\\nBcc: victim@x")
    'Evil Bcc: victim@x'
    """
    cleaned = "".join(" " if _is_control(ch) else ch for ch in value)
    return _SPACES.sub(" ", cleaned).strip()


def build_reply(
    *,
    from_addr: str,
    from_name: str,
    to_addr: str,
    to_name: str,
    subject: str,
    body: str,
    message_id: str,
    in_reply_to: str | None,
    references: Sequence[str],
    auto: bool,
    language: str,
    date: datetime | None = None,
) -> EmailMessage:
    """A text/plain UTF-8 reply (quoted-printable), threaded under the original.

    ``in_reply_to`` and ``references`` are the original's Message-ID and References (with or
    without angle brackets; malformed ones are dropped). ``References`` becomes the
    original's references plus its Message-ID: the first (thread root) and the last
    ``MAX_REFERENCES - 1``. ``auto`` adds ``Auto-Submitted: auto-replied`` (RFC 3834).
    ``date`` defaults to now (UTC); a naive datetime is taken as local time.

    Raises InvalidAddressError for a bad address, ValueError for a bad Message-ID or
    language tag.
    """
    own_id = _message_id(message_id)
    if own_id is None:
        raise ValueError(f"invalid Message-ID for the reply: {message_id!r}")
    if not _LANGUAGE_TAG.match(language):
        raise ValueError(f"invalid language tag: {language!r}")

    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = _address("From", from_name, from_addr)
    msg["To"] = _address("To", to_name, to_addr)
    msg["Subject"] = header_text(subject)
    msg["Date"] = format_datetime((date or datetime.now(UTC)).astimezone())
    msg["Message-ID"] = own_id
    parent = _message_id(in_reply_to) if in_reply_to else None
    if parent:
        msg["In-Reply-To"] = parent
    thread = _thread(references, parent)
    if thread:
        msg["References"] = " ".join(thread)
    if auto:
        msg["Auto-Submitted"] = "auto-replied"
    # Exchange and Outlook honour this: no out-of-office or read receipts back to us.
    msg["X-Auto-Response-Suppress"] = "All"
    # Our own mail coming back (a loop, a forward) is recognised by the screen stage.
    msg["X-Mailbot"] = "1"
    msg.set_content(_body_text(body), subtype="plain", charset="utf-8", cte="quoted-printable")
    # After set_content(): it clears every Content-* header first.
    msg["Content-Language"] = language
    return msg


def _address(field: str, name: str, addr: str) -> Address:
    addr = addr.strip()
    if any(_is_control(ch) for ch in addr) or not _ADDR_SPEC.match(addr):
        raise InvalidAddressError(field, addr)
    local, _, domain = addr.rpartition("@")
    try:
        return Address(display_name=header_text(name), username=local, domain=domain)
    except (ValueError, IndexError) as exc:  # the email package's own parser objected
        raise InvalidAddressError(field, addr) from exc


def _message_id(value: str | None) -> str | None:
    """``<id@host>`` for ``id@host`` or ``<id@host>``; None when malformed."""
    if value is None:
        return None
    bare = value.strip().removeprefix("<").removesuffix(">").strip()
    if any(_is_control(ch) for ch in bare) or not _MSG_ID.match(bare) or not bare.isascii():
        return None
    return f"<{bare}>"


def _thread(references: Sequence[str], parent: str | None) -> list[str]:
    ids: list[str] = []
    for ref in [*references, *([parent] if parent else [])]:
        norm = _message_id(ref)
        if norm and norm not in ids:
            ids.append(norm)
    if len(ids) > MAX_REFERENCES:
        # Keep the thread root: clients that thread by the first id still find it.
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    return ids


def _body_text(body: str) -> str:
    """Normalise line ends to \\n and drop control characters other than TAB and LF."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\t\n" or not _is_control(ch))
    return text if text.endswith("\n") else text + "\n"


def _is_control(ch: str) -> bool:
    # Cc: C0/C1 controls incl. CR, LF, NUL; Zl/Zp: U+2028/U+2029, which some parsers treat
    # as line breaks.
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")
