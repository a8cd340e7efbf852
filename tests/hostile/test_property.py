"""Property tests: any bytes in, a recorded outcome out, no exception escapes.

Two levels, both with the real parts:

* the stages called directly, parse -> clean -> screen -> analyse (the shipped model), so an
  exception in any of them fails the test at once;
* the whole ``Processor`` (plus the repository's macros) over an in-memory SQLite store. The
  Processor records a crashed stage as outcome ``failed`` with "internal error" instead of
  raising, which would hide a bug from a test that only looks for exceptions: so the test
  also demands that this safety net never fired.

tests/text/test_mime.py already fuzzes ``parse`` alone; these go through the whole chain.
Example counts are modest so the module runs in well under a minute. Set
``MAILBOT_RELIABILITY_DIR`` to have the number of inputs tried written to
``property.json`` there (scripts/reliability_report.py does).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.models import CATEGORIES, SIGNALS, TONES, CleanText, InboundMail, MailOutcome, RawMail, Verdict
from mailbot.nlp.analyzer import Analyzer
from mailbot.pipeline import Processor
from mailbot.respond import Responder
from mailbot.store import Store
from mailbot.text.clean import clean
from mailbot.text.mime import parse
from mailbot.text.screen import screen
from tests.hostile.conftest import SUPPORT, hostile_settings

TRIED: dict[str, int] = {}
_keys = itertools.count()

# ------------------------------------------------------------------ strategies

_HEADER_NAMES = ("From", "To", "Cc", "Reply-To", "Subject", "Message-ID", "In-Reply-To", "References",
                 "Date", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version",
                 "Auto-Submitted", "Precedence", "List-Id", "Return-Path", "X-Autoreply",
                 "X-Auto-Response-Suppress", "X-Mailbot", "X-Weird\x00Name", "Ünïcode")
_CONTENT_TYPES = ("text/plain", "text/html", "multipart/mixed", "multipart/alternative", "multipart/report",
                  "message/rfc822", "message/delivery-status", "application/octet-stream", "image/png",
                  "text/", "/", "multipart/mixed; boundary=", "text/plain; charset=")
_CHARSETS = ("utf-8", "us-ascii", "iso-8859-1", "x-unknown", "utf-7", "utf-16", "zlib", "base64",
             "idna", "shift_jis", "gb2312", "koi8-r", "", "\"", "unicode-escape")
_TEXT_ATOMS = ("Mijn bestelling 12345678 is kapot.", "Ik wil mijn geld terug!", "Thank you so much!",
               "Op 3 mrt. 2025 om 10:12 schreef Jan <jan@x.nl>:", "> gequote regel", "-- ",
               "Met vriendelijke groet,", "Sent from my iPhone", "idioten", "advocaat", "{{ 7*7 }}",
               "{% for x in y %}", "<script>alert(1)</script>", "=?utf-8?b?SGFsbG8=?=", "=?x?q?=ZZ?=",
               "\r\n", "\n", "\r", "\t", "\x00", "\u2028", "é", "€", "\udcff")
_ENCODINGS = ("base64", "quoted-printable", "8bit", "x-junk")


def _header_value() -> st.SearchStrategy[str]:
    atoms = st.sampled_from(("Jan <jan@example.nl>", "support@shop.example", "<a@b>", "no",
                             "auto-replied", "bulk", "<>", "mailer-daemon@x.nl", "(((", "\"", ",", ";",
                             "=?utf-8?b?" + base64.b64encode(b"Jan\r\nBcc: x@y").decode() + "?=",
                             "text/plain; charset=utf-8", 'multipart/mixed; boundary="b"', "base64",
                             "quoted-printable", "Tue, 4 Mar 2025 10:12:21 +0100", "31 Feb 99999"))
    return st.lists(st.one_of(atoms, st.text(max_size=12)), max_size=4).map(" ".join)


@st.composite
def _mime_part(draw: st.DrawFn, depth: int = 0) -> str:
    content_type = draw(st.sampled_from(_CONTENT_TYPES))
    charset = draw(st.sampled_from(_CHARSETS))
    lines = [f"Content-Type: {content_type}; charset={charset}"]
    if draw(st.booleans()):
        lines.append(f"Content-Transfer-Encoding: {draw(st.sampled_from(_ENCODINGS))}")
    if content_type.startswith("multipart") and depth < 3:
        boundary = draw(st.sampled_from(("b", "b1", "=_x", "")))
        lines[0] = f'Content-Type: {content_type}; boundary="{boundary}"'
        children = draw(st.lists(_mime_part(depth + 1), max_size=3))
        body = "".join(f"--{boundary}\r\n{child}\r\n" for child in children)
        if draw(st.booleans()):
            body += f"--{boundary}--\r\n"
    else:
        body = "\r\n".join(draw(st.lists(st.one_of(st.sampled_from(_TEXT_ATOMS), st.text(max_size=30)),
                                         max_size=8)))
    return "\r\n".join(lines) + "\r\n\r\n" + body


@st.composite
def mail_like(draw: st.DrawFn) -> bytes:
    """Bytes shaped like mail: headers picked from the ones the pipeline reads, random
    values, a random MIME tree, any charset name; then maybe raw bytes spliced in."""
    headers = draw(st.lists(st.tuples(st.sampled_from(_HEADER_NAMES), _header_value()), max_size=10))
    if draw(st.booleans()):
        headers.insert(0, ("From", draw(st.sampled_from(("Jan <jan@example.nl>", "klant@example.com",
                                                          '"de Vries, Anneke" <anneke@example.nl>')))))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    text = head + draw(_mime_part())
    data = text.encode("utf-8", "surrogateescape")
    for position, junk in draw(st.lists(st.tuples(st.integers(0, 4000), st.binary(max_size=6)), max_size=3)):
        data = data[:position] + junk + data[position:]
    return data


any_mail = st.one_of(st.binary(max_size=3000), mail_like())

# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module", autouse=True)
def _report_inputs_tried() -> Iterator[None]:
    yield
    folder = os.environ.get("MAILBOT_RELIABILITY_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        path = Path(folder) / "property.json"
        previous = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**previous, **TRIED}, indent=1, sort_keys=True))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def processor(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, analyzer: Analyzer,
              responder: Responder, policy_without_hours: Path) -> Iterator[tuple[Processor, Store]]:
    """The Processor over SQLite in memory, and over the test suite's PostgreSQL (which
    refuses what SQLite takes, such as NUL characters in text and JSON)."""
    settings = hostile_settings(tmp_path_factory.mktemp("property"), policy_without_hours)
    if request.param == "sqlite":
        url = "sqlite://"                # in memory: one shared connection, nothing on disk
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        cluster.recreate_database()
        url = cluster.url()
    store = Store.open(url)
    store.migrate()
    yield Processor(settings, settings.mailboxes[0], store, analyzer=analyzer, decider=responder), store
    store.close()


def _count(name: str) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1


# ------------------------------------------------------------------ the properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=any_mail, replies=st.integers(0, 10))
def test_parse_clean_screen_analyse_never_raise(analyzer: Analyzer, data: bytes, replies: int) -> None:
    _count("stages")
    mail = parse(data)
    assert isinstance(mail, InboundMail)
    cleaned = clean(mail.text)
    assert isinstance(cleaned, CleanText)
    verdict = screen(mail, own_addresses=(SUPPORT,), own_domains=("shop.example",),
                     auto_replies_last_day=replies, daily_limit=3)
    assert isinstance(verdict, Verdict) and (verdict.proceed or verdict.reason is not None)
    analysis = analyzer.analyse(mail.subject, mail.text, from_name=mail.from_name,
                                sign_off_name=cleaned.sign_off_name)
    assert analysis.language in ("nl", "en", "unknown")
    assert analysis.category in CATEGORIES and analysis.tone in TONES
    assert set(analysis.signals) <= set(SIGNALS)
    # The analysis goes into a JSON column: it must serialise.
    json.dumps(analysis.to_dict())


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.one_of(st.sampled_from(_TEXT_ATOMS), st.text(max_size=40)),
                     max_size=60).map("\n".join))
def test_clean_never_raises_and_keeps_only_what_it_got(text: str) -> None:
    _count("clean")
    cleaned = clean(text)
    assert len(cleaned.body) <= len(text) + 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=any_mail)
def test_the_processor_records_exactly_one_outcome(processor: tuple[Processor, Store], data: bytes) -> None:
    worker, store = processor
    _count(f"processor ({store.backend})")
    key = f"prop-{next(_keys)}"
    done = worker.process(RawMail("support", key, data, received_at=datetime.now(UTC)))
    rows = [m for m in store.list_mails(since=None, limit=1_000_000) if m.source_key == key]
    assert len(rows) == 1
    [mail] = rows
    assert mail.outcome is done.outcome and mail.outcome in set(MailOutcome)
    assert mail.outcome is not MailOutcome.FAILED and "internal error" not in mail.reason, mail.reason
    if done.result.draft is not None:
        assert not set(done.result.draft.to_addr) & set("\r\n,;<> ")
