"""Header injection through the whole path: customer mail with line breaks hidden in its
From name, Subject, Message-ID, References and Reply-To is answered automatically by the real
policy, the real sender writes the reply, and the reply's bytes are parsed back: no header
appears that mailbot did not put there, and the reply goes to the customer alone.

(compose.build_reply on its own is tested in tests/mail/test_compose.py; this is the same
property end to end, with the values as the parser, the store and the macros hand them on.)
"""

from __future__ import annotations

import re

from mailbot.models import MailOutcome
from tests.hostile import corpus
from tests.hostile.conftest import Pipeline, assert_one_clean_outcome

# Exactly the headers build_reply writes (Auto-Submitted only for automatic replies,
# In-Reply-To / References only when the original had a usable Message-ID).
ALLOWED = {
    "from", "to", "subject", "date", "message-id", "in-reply-to", "references", "auto-submitted",
    "x-auto-response-suppress", "x-mailbot", "mime-version", "content-type",
    "content-transfer-encoding", "content-language",
}
_HEADER_LINE = re.compile(rb"^([!-9;-~]+):")


def _header_block(raw: bytes) -> list[bytes]:
    head, sep, _body = raw.partition(b"\r\n\r\n")
    assert sep, "no end of headers"
    return head.split(b"\r\n")


def test_no_header_can_be_injected_into_an_automatic_reply(pipeline: Pipeline) -> None:
    customers = {}
    for index, (name, *_rest) in enumerate(corpus.INJECTIONS):
        done = pipeline.process(name, corpus.injection_mail(index))
        mail = assert_one_clean_outcome(pipeline, name, done)
        customers[mail.from_addr] = name
        # Praise, neutral, first contact: the shipped policy sends these without an agent.
        assert mail.outcome is MailOutcome.AUTO_REPLY, (name, mail.reason)
    replies = pipeline.send_all()
    assert len(replies) == len(corpus.INJECTIONS)
    for reply in replies:
        lines = _header_block(reply.raw)
        names = []
        for line in lines:
            if line[:1] in (b" ", b"\t"):
                continue                  # a folded continuation of the header above
            match = _HEADER_LINE.match(line)
            assert match, f"not a header line: {line!r}"
            names.append(match.group(1).decode().lower())
        assert set(names) <= ALLOWED, set(names) - ALLOWED
        assert len(names) == len(set(names)), f"a header appears twice: {names}"
        # Parsed the way a receiving server would: one recipient, the customer.
        to = reply.message["To"].addresses
        assert len(to) == 1 and to[0].addr_spec in customers, to
        for field in ("Cc", "Bcc"):
            assert reply.legacy[field] is None and reply.message[field] is None
        # "victim@evil.example" may survive as text inside the quoted display name or the
        # subject; as an address it appears nowhere.
        assert all(a.domain != "evil.example" for a in [*reply.message["To"].addresses,
                                                        *reply.message["From"].addresses])
        body = reply.message.get_body(("plain",))
        assert body is not None and not body.get_content().startswith("Injected")
        # Threading headers hold message ids and nothing else.
        for field in ("In-Reply-To", "References"):
            value = reply.legacy[field]
            if value is not None:
                assert re.fullmatch(r"(\s*<[^<>\s@]+@[^<>\s@]+>)+\s*", value), (field, value)


def test_a_line_break_in_reply_to_sends_the_reply_to_from(pipeline: Pipeline) -> None:
    index = next(i for i, (name, *_r) in enumerate(corpus.INJECTIONS) if name == "reply_to_with_crlf")
    done = pipeline.process("rt", corpus.injection_mail(index))
    assert done.result.draft is not None
    assert done.result.draft.to_addr == "inj7@example.nl"
