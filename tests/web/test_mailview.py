"""Showing hostile customer mail safely (the sanitiser), and the doctests of mailbot.web."""

from __future__ import annotations

import doctest
import importlib
from dataclasses import replace
from email.message import EmailMessage

import pytest

from mailbot.models import MailOutcome
from mailbot.store import NewMail, Store
from mailbot.web.mailview import count_remote_references, original_view, sanitise_html

HOSTILE = """
<html><head><title>t</title><style>body{background:url(http://evil.example/css.png)}</style>
<link rel="stylesheet" href="http://evil.example/x.css"><meta http-equiv="refresh" content="0;url=http://evil.example">
<base href="http://evil.example/"></head>
<body onload="alert(1)">
<p style="background-image:url('https://evil.example/bg.png')">Beste <b>klant</b>,</p>
<script>alert('xss')</script><img src="http://evil.example/track.gif" onerror="alert(2)">
<img srcset="http://evil.example/a.png 1x"><img src="//evil.example/p.gif"><img src="cid:logo@x">
<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">
<a href="javascript:alert(3)">klik</a><a href="https://evil.example/phish">bank</a>
<iframe src="http://evil.example/frame"></iframe><object data="http://evil.example/o"></object>
<svg><image href="http://evil.example/svg.png"/></svg><form action="http://evil.example"><input name=x></form>
<video poster="http://evil.example/poster.png"></video><table background="http://evil.example/t.png"><tr><td>cel</td></tr></table>
</body></html>
"""


def test_sanitised_html_cannot_run_or_fetch_anything() -> None:
    clean = sanitise_html(HOSTILE)
    lowered = clean.lower()
    for forbidden in ("<script", "alert(", "onload", "onerror", "http:", "https:", "//evil", "javascript:",
                      "cid:", "<iframe", "<object", "<svg", "<form", "<input", "<style", "<link", "<meta",
                      "<base", "<video", "style=", "srcset", "background", "href="):
        assert forbidden not in lowered, (forbidden, clean)
    assert "Beste <b>klant</b>," in clean and "<td>cel</td>" in clean and ">bank</a>" in clean
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in clean        # inline images stay
    assert count_remote_references(HOSTILE) >= 10


@pytest.mark.parametrize("markup", [
    "<img src=x onerror=alert(1)//",                        # unterminated
    "<scr<script>ipt>alert(1)</script>",
    "<<img src=http://e.x/a>>",
    "<a href='&#106;avascript:alert(1)'>x</a>",
    "<div style='width: expression(alert(1))'>x</div>",
    "<noscript><p title=\"</noscript><img src=http://e.x/b>\"></noscript>",
    "<math><mtext><table><mglyph><style><img src=http://e.x/c>",
])
def test_sanitiser_survives_known_tricks(markup: str) -> None:
    clean = sanitise_html(markup).lower()
    assert "http:" not in clean and "javascript" not in clean and "onerror" not in clean
    assert "<script" not in clean and "expression" not in clean


def test_original_view_of_an_html_mail_with_attachments() -> None:
    message = EmailMessage()
    message["From"] = "Jan Klant <jan@example.nl>"
    message["Subject"] = "Factuur"
    message["Message-ID"] = "<att-1@example.nl>"
    message.set_content("Zie <script>alert(1)</script> bijlage")
    message.add_alternative("<p>Zie bijlage</p><img src='http://127.0.0.1:9/x.gif'>", subtype="html")
    message.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="factuur.pdf")
    raw = message.as_bytes()
    store = Store.open("sqlite://")
    store.migrate()
    try:
        result = store.record_mail(NewMail(mailbox="support", source_key="a1", from_addr="jan@example.nl",
                                           subject="Factuur", size=len(raw), raw=raw, text="Zie bijlage",
                                           message_id="att-1@example.nl"),
                                   outcome=MailOutcome.NEEDS_AGENT, reason="test")
        mail = result.mail
        view = original_view(mail)
        assert view.body.startswith("Zie <script>")         # text stays text; the template escapes it
        assert view.html is not None and view.html.strip() == "<p>Zie bijlage</p><img>"
        assert view.remote_blocked == 1
        attachments = [(a.filename, a.content_type) for a in view.attachments]
        assert attachments == [("factuur.pdf", "application/pdf")]
        assert ("From", "Jan Klant <jan@example.nl>") in view.headers and not view.purged
        purged = original_view(replace(mail, raw=None))
        assert purged.purged and purged.html is None and purged.body == "Zie bijlage"
    finally:
        store.close()


@pytest.mark.parametrize("module", ["mailbot.web.mailview", "mailbot.web.formatting",
                                    "mailbot.web.careful", "mailbot.web.passwords",
                                    "mailbot.web.routes.auth"])
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
