"""Building replies: subjects, deterministic ids, threading, header injection."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest

from mailbot.errors import MailbotError
from mailbot.mail.compose import (
    MAX_REFERENCES,
    InvalidAddressError,
    build_reply,
    header_text,
    make_message_id,
    reply_subject,
)


def build(**overrides: Any) -> EmailMessage:
    values: dict[str, Any] = {
        "from_addr": "support@shop.example", "from_name": "Shop Klantenservice",
        "to_addr": "jan@example.nl", "to_name": "Jan Jansen", "subject": "Re: Kapotte stoel",
        "body": "Beste Jan,\n\nIk begrijp dat uw stoel kapot is.\n", "language": "nl",
        "message_id": make_message_id("support", "orig@example.nl", "shop.example"),
        "in_reply_to": "orig@example.nl", "references": ["<root@example.nl>"], "auto": True,
        "date": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    }
    values.update(overrides)
    return build_reply(**values)


def reparse(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize(("original", "expected"), [
    ("Kapotte stoel", "Re: Kapotte stoel"),
    ("Re: Kapotte stoel", "Re: Kapotte stoel"),
    ("RE: re: Kapotte stoel", "Re: Kapotte stoel"),
    ("Re: RE: Antw: x", "Re: x"),
    ("re : AW: Sv: Ref: x", "Re: x"),
    ("Re[2]: x", "Re: x"),
    ("Re(3): Antwoord: x", "Re: x"),
    ("Fwd: x", "Re: Fwd: x"),
    ("Refund please", "Re: Refund please"),      # "Ref" only as a prefix with a colon
    ("Regarding: x", "Re: Regarding: x"),
    ("Re:\r\n Bcc: evil@x", "Re: Bcc: evil@x"),
])
def test_reply_subject(original: str, expected: str) -> None:
    assert reply_subject(original, "nl") == expected


@pytest.mark.parametrize(("language", "expected"), [
    ("nl", "Re: uw bericht"), ("en", "Re: your message"), ("de", "Re: your message"),
])
def test_empty_subject(language: str, expected: str) -> None:
    assert reply_subject("", language) == expected
    assert reply_subject("Re: ", language) == expected


def test_message_id_is_deterministic() -> None:
    first = make_message_id("support", "<orig@example.nl>", "shop.example")
    assert first == make_message_id("support", "<orig@example.nl>", "shop.example")
    assert first != make_message_id("sales", "<orig@example.nl>", "shop.example")
    assert first != make_message_id("support", "<other@example.nl>", "shop.example")
    assert first.startswith("<mailbot.") and first.endswith("@shop.example>")
    assert len(first) == len("<mailbot.@shop.example>") + 24
    # The NUL separator keeps ("ab", "c") and ("a", "bc") apart.
    assert make_message_id("ab", "c", "x.example") != make_message_id("a", "bc", "x.example")
    with pytest.raises(ValueError):
        make_message_id("support", "k", "bad domain\r\nBcc: x")


def test_threading_and_bot_headers() -> None:
    parsed = reparse(build())
    assert parsed["Message-ID"] == make_message_id("support", "orig@example.nl", "shop.example")
    assert parsed["In-Reply-To"] == "<orig@example.nl>"
    assert parsed["References"] == "<root@example.nl> <orig@example.nl>"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert parsed["X-Mailbot"] == "1"
    assert parsed["Content-Language"] == "nl"
    assert parsed["Date"] == "Wed, 01 May 2024 12:00:00 +0000" or parsed["Date"].datetime == datetime(
        2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parsed["From"].addresses[0].addr_spec == "support@shop.example"
    assert parsed["To"].addresses[0].display_name == "Jan Jansen"


def test_agent_replies_are_not_auto_submitted_and_without_parent_have_no_threading() -> None:
    parsed = reparse(build(auto=False, in_reply_to=None, references=[]))
    assert "Auto-Submitted" not in parsed
    assert "In-Reply-To" not in parsed and "References" not in parsed
    assert parsed["X-Mailbot"] == "1"


def test_references_are_capped_keeping_the_root() -> None:
    refs = [f"<r{n}@example.nl>" for n in range(40)]
    ids = reparse(build(references=refs, in_reply_to="<last@example.nl>"))["References"].split()
    assert len(ids) == MAX_REFERENCES
    assert ids[0] == "<r0@example.nl>"
    assert ids[-1] == "<last@example.nl>"
    assert ids[-2] == "<r39@example.nl>"


def test_malformed_references_are_dropped() -> None:
    ids = reparse(build(references=["no-at-sign", "<a@b>\r\nBcc: x@y", "<ok@example.nl>", "ok@example.nl"],
                        in_reply_to="<p@example.nl>"))["References"].split()
    assert ids == ["<ok@example.nl>", "<p@example.nl>"]


def test_header_injection_is_impossible() -> None:
    message = build(to_name="Evil\r\nBcc: victim@x", from_name="Shop\nX-Evil: 1",
                    subject="Hallo\r\nBcc: victim@x\u2028Cc: other@x")
    raw = message.as_bytes()
    parsed = reparse(message)
    assert parsed["Bcc"] is None and parsed["Cc"] is None and parsed["X-Evil"] is None
    assert b"\r\nBcc:" not in raw and b"\nBcc:" not in raw and b"\nX-Evil" not in raw
    assert parsed["To"].addresses[0].addr_spec == "jan@example.nl"
    assert parsed["To"].addresses[0].display_name == "Evil Bcc: victim@x"
    assert str(parsed["Subject"]) == "Hallo Bcc: victim@x Cc: other@x"


@pytest.mark.parametrize("address", [
    "jan@example.nl\r\nBcc: victim@x", "no-at-sign", "two@@example.nl", "a b@example.nl",
    "<jan@example.nl>", "jan@example.nl, victim@x", "", "jan@",
])
def test_invalid_addresses_raise(address: str) -> None:
    with pytest.raises(InvalidAddressError) as caught:
        build(to_addr=address)
    assert isinstance(caught.value, MailbotError) and isinstance(caught.value, ValueError)
    assert "To" in str(caught.value)


def test_body_is_utf8_quoted_printable_and_round_trips() -> None:
    body = "Beste Zoë,\r\nwij betalen € 49,95 terug.\x00\x07\n" + "lang " * 300
    message = build(body=body)
    raw = message.as_bytes()
    assert b"Content-Transfer-Encoding: quoted-printable" in raw
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    parsed = reparse(message)
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"
    text = parsed.get_content()
    assert "Zoë" in text and "€ 49,95" in text and "\x00" not in text and "\x07" not in text


def test_non_ascii_names_are_encoded_words() -> None:
    raw = build(to_name="Zoë Ünal").as_bytes()
    assert raw.isascii()
    assert reparse(build(to_name="Zoë Ünal"))["To"].addresses[0].display_name == "Zoë Ünal"


def test_bad_own_message_id_or_language() -> None:
    with pytest.raises(ValueError, match="Message-ID"):
        build(message_id="not an id")
    with pytest.raises(ValueError, match="language"):
        build(language="nl\r\nBcc: x")


def test_header_text() -> None:
    assert header_text("  a\tb\x00c\x85d  ") == "a b c d"
