"""Template syntax in every customer-controlled field stays text.

Each probe (``{{ 7*7 }}``, ``{% for %}``, ``{{ ''.__class__.__mro__ }}``, ``{% include %}``,
``{{ company.phone }}``, ``{# #}``) is put in the subject, the From display name, the sign-off
name, the body and an attachment's file name of one complaint, which goes through the real
Processor with the repository's macros. The fields reach the reply like this: the subject in
``reply_subject`` (every macro's subject line) and ``subject``; the body through
``customer_words`` (quoted by the fallback and apology macros); the From name as the reply's
To display name; the file name only in the parsed mail (macros never see it). Wherever a
probe arrives it must arrive literally, and nothing it says may be evaluated.
"""

from __future__ import annotations

import pytest

from mailbot.text.mime import parse
from tests.hostile import corpus
from tests.hostile.conftest import Pipeline, assert_one_clean_outcome

# What each probe would produce if it were executed instead of printed.
EVALUATED = ("49", "LOOPLOOPLOOP", "<class 'object'>", "+31 20 123 4567 ")


@pytest.mark.parametrize("index", range(len(corpus.TEMPLATE_PROBES)),
                         ids=[f"probe{i}" for i in range(len(corpus.TEMPLATE_PROBES))])
def test_template_syntax_from_the_customer_is_printed_literally(pipeline: Pipeline, index: int) -> None:
    probe = corpus.TEMPLATE_PROBES[index]
    data = corpus.template_mail(probe, index)
    parsed = parse(data)
    assert parsed.subject == f"Klacht {probe}"
    assert [a.filename for a in parsed.attachments] == [f"{probe}.pdf"]

    key = f"tpl-{index}"
    done = pipeline.process(key, data)
    assert_one_clean_outcome(pipeline, key, done)
    draft = done.result.draft
    assert draft is not None and draft.body, done.reason
    assert draft.subject == f"Re: Klacht {probe}"
    # Only the variables a macro reads are stored with the draft; every macro's subject
    # line reads reply_subject.
    assert draft.variables["reply_subject"] == f"Re: Klacht {probe}"
    assert draft.variables.get("subject", f"Klacht {probe}") == f"Klacht {probe}"
    if "customer_words" in draft.variables:
        assert probe in draft.variables["customer_words"]
        if draft.macro_id in ("ask_what_they_want", "acknowledge_apologise"):
            assert probe in draft.body, draft.body        # these macros quote the customer
    assert draft.to_name == f"Jan {probe}"
    for text in (draft.subject, draft.body):
        for result in EVALUATED:
            assert result not in text.replace(probe, ""), (result, text)
    # The shipped sign-off appears once: an {% include %} from the customer did not add one.
    assert draft.body.count("Met vriendelijke groet") <= 1

    # And in the bytes that leave: subject and To name exactly as the customer wrote them.
    [reply] = pipeline.send_all()
    assert str(reply.message["Subject"]) == f"Re: Klacht {probe}"
    assert reply.message["To"].addresses[0].display_name == f"Jan {probe}"
    text = reply.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for result in EVALUATED:
        assert result not in text.replace(probe, ""), (result, text)
