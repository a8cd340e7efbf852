"""mailbot.text.mime.parse: fixtures from real clients, broken mail, limits, and fuzzing."""

from __future__ import annotations

import base64
import doctest
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.models import InboundMail
from mailbot.text import htmltext, mime
from mailbot.text.mime import MAX_DEPTH, MAX_TEXT_BYTES, parse
from tests.text.eml_fixtures import EmlFixture, fixtures_with, load_fixtures, pick

# ---------------------------------------------------------------- the fixture folder


def test_fixture_folder_is_complete() -> None:
    fixtures = load_fixtures()
    assert len(fixtures) >= 30
    assert all("verdict" in fixture.expected for fixture in fixtures)


def _fields(mail: InboundMail) -> dict[str, Any]:
    return {
        "subject": mail.subject,
        "from_addr": mail.from_addr,
        "from_name": mail.from_name,
        "message_id": mail.message_id,
        "in_reply_to": mail.in_reply_to,
        "reply_to": mail.reply_to,
        "date": mail.date.isoformat() if mail.date else None,
        "content_type": mail.content_type,
        "report_type": mail.report_type,
    }


@pytest.mark.parametrize("fixture", fixtures_with(
    "subject", "from_addr", "from_name", "message_id", "in_reply_to", "reply_to", "date",
    "content_type", "report_type"))
def test_fixture_headers(fixture: EmlFixture) -> None:
    expected, actual = pick(fixture.expected, _fields(parse(fixture.raw)))
    assert actual == expected


@pytest.mark.parametrize("fixture", fixtures_with("attachments"))
def test_fixture_attachments(fixture: EmlFixture) -> None:
    mail = parse(fixture.raw)
    actual = [{"filename": a.filename, "content_type": a.content_type, "size": a.size}
              for a in mail.attachments]
    expected = fixture.expected["attachments"]
    assert len(actual) == len(expected), actual
    for got, want in zip(actual, expected, strict=True):
        if want["size"] is None:        # message/* parts: size is approximate
            size = got["size"]
            assert isinstance(size, int) and size > 0
            got = {**got, "size": None}
        assert got == want


@pytest.mark.parametrize("fixture", fixtures_with("defects"))
def test_fixture_defects(fixture: EmlFixture) -> None:
    defects = parse(fixture.raw).defects
    wanted = fixture.expected["defects"]
    if not wanted:
        assert defects == ()
    for fragment in wanted:
        assert any(fragment in defect for defect in defects), (fragment, defects)


@pytest.mark.parametrize("fixture", fixtures_with("text_contains", "text_excludes"))
def test_fixture_text(fixture: EmlFixture) -> None:
    text = parse(fixture.raw).text
    for fragment in fixture.expected.get("text_contains", []):
        assert fragment in text
    for fragment in fixture.expected.get("text_excludes", []):
        assert fragment not in text


@pytest.mark.parametrize("fixture", [pytest.param(f, id=f.name) for f in load_fixtures()])
def test_every_fixture_is_one_line_clean(fixture: EmlFixture) -> None:
    mail = parse(fixture.raw)
    assert_invariants(mail)
    assert mail.size == len(fixture.raw)


def assert_invariants(mail: InboundMail) -> None:
    """What every parsed mail promises, whatever went in."""
    assert isinstance(mail, InboundMail)
    one_line = [mail.subject, mail.from_name, mail.from_addr,
                *(name for name, _ in mail.headers), *(value for _, value in mail.headers)]
    for value in one_line:
        assert "\n" not in value and "\r" not in value, value
    for value in [*one_line, mail.text, mail.html or "", *mail.defects,
                  *(a.filename or "" for a in mail.attachments)]:
        assert "\x00" not in value
        value.encode("utf-8")           # no lone surrogates
    assert mail.from_addr == mail.from_addr.lower()
    assert mail.message_id is None or ("<" not in mail.message_id and ">" not in mail.message_id)
    assert "\r" not in mail.text


# ---------------------------------------------------------------- headers


def _mail(headers: str, body: str = "Hallo\r\n") -> InboundMail:
    return parse(headers.replace("\n", "\r\n").encode("utf-8") + b"\r\n" + body.encode("utf-8"))


def test_folded_and_encoded_headers_become_one_line() -> None:
    mail = _mail("From: =?utf-8?Q?Jan=0D=0A_de?=\n =?utf-8?Q?_Vries?= <jan@example.nl>\n"
                 "Subject: Re: bestelling\n\t12345 =?utf-8?Q?=0Aal_weken?=\n")
    assert mail.subject == "Re: bestelling 12345 al weken"
    assert mail.from_name == "Jan de Vries"


def test_encoded_word_split_inside_a_character() -> None:
    # Some mailers cut a UTF-8 sequence across two encoded-words.
    mail = _mail("From: a@example.nl\nSubject: =?utf-8?Q?caf=C3?= =?utf-8?Q?=A9_au_lait?=\n")
    assert mail.subject == "café au lait"


@pytest.mark.parametrize(("raw", "expected"), [
    ("=?ISO-8859-1?Q?Klacht_=E9=E9n?=", "Klacht één"),
    ("=?windows-1252?Q?=93quotes=94_=80?=", "“quotes” €"),
    ("=?utf-8?b?w6k=?=", "é"),
    ("=?utf-8*nl?Q?taal?=", "taal"),                       # RFC 2231 language suffix
    ("=?utf-8?Q?open", "=?utf-8?Q?open"),                  # unterminated: kept
    ("=?utf-8?B?@@@?= x", "=?utf-8?B?@@@?= x"),            # invalid base64: kept
    ("Re:=?utf-8?Q?geen_spatie?=", "Re:geen spatie"),
    ("=?iso-8859-1?Q?=C3=A9?=", "é"),                      # declared Latin-1, really UTF-8
])
def test_rfc2047_variants(raw: str, expected: str) -> None:
    assert _mail(f"From: a@example.nl\nSubject: {raw}\n").subject == expected


def test_raw_8bit_headers_are_decoded() -> None:
    data = (b"From: Ren\xc3\xa9 <rene@example.nl>\r\nSubject: caf\xe9 \xc3\xa9\r\n\r\nx")
    mail = parse(data)
    assert mail.from_name == "René"
    assert mail.subject == "café é"


@pytest.mark.parametrize(("value", "addr", "name"), [
    ("Jan de Vries <Jan.DeVries@Example.NL>", "jan.devries@example.nl", "Jan de Vries"),
    ('"Vries, Jan de" <jan@example.nl>', "jan@example.nl", "Vries, Jan de"),
    ("'Jan' <jan@example.nl>", "jan@example.nl", "Jan"),
    ("jan@example.nl (Jan de Vries)", "jan@example.nl", "Jan de Vries"),
    ("MAILER-DAEMON@mx.example.nl (Mail Delivery System)", "mailer-daemon@mx.example.nl",
     "Mail Delivery System"),
    ("undisclosed-recipients:;", "", ""),
    ("Jan de Vries", "", ""),
    ("<>", "", ""),
    ("Jan <jan\x00@example.nl>", "", "Jan"),                # control characters: unusable
    ("(" * 2000 + "x@example.nl", "", ""),                 # deeply nested comments
])
def test_from_header(value: str, addr: str, name: str) -> None:
    mail = _mail(f"From: {value}\n")
    assert (mail.from_addr, mail.from_name) == (addr, name)
    if not addr:
        assert any("From" in defect for defect in mail.defects)


def test_missing_from_is_a_defect() -> None:
    mail = _mail("Subject: x\n")
    assert mail.from_addr == ""
    assert "missing From header" in mail.defects


def test_ids_dates_and_address_lists() -> None:
    mail = _mail(
        "From: a@example.nl\nTo: Klantenservice <KS@Shop.NL>, b@example.nl\nCc: c@example.nl\n"
        "Reply-To: Antwoord <Reply@Example.NL>\nMessage-ID:  <abc.123@mail.example.nl>  \n"
        "In-Reply-To: <x@shop.nl> (comment)\nReferences: <w@shop.nl>\n <x@shop.nl>\n"
        "References: <y@shop.nl>\nDate: Tue, 04 Mar 2025 10:12:21 -0000\n")
    assert mail.message_id == "abc.123@mail.example.nl"
    assert mail.in_reply_to == "x@shop.nl"
    assert mail.references == ("w@shop.nl", "x@shop.nl", "y@shop.nl")
    assert mail.to == ("ks@shop.nl", "b@example.nl")
    assert mail.cc == ("c@example.nl",)
    assert mail.reply_to == "reply@example.nl"
    assert mail.date == datetime(2025, 3, 4, 10, 12, 21, tzinfo=UTC)


def test_unparseable_date_is_none_with_defect() -> None:
    mail = _mail("From: a@example.nl\nDate: gisteren rond het middaguur\n")
    assert mail.date is None
    assert any("Date" in defect for defect in mail.defects)


def test_headers_keep_order_and_duplicates() -> None:
    mail = _mail("Received: one\nFrom: a@example.nl\nReceived: two\n")
    assert mail.header_all("received") == ["one", "two"]
    assert [name for name, _ in mail.headers] == ["Received", "From", "Received"]


# ---------------------------------------------------------------- charsets


@pytest.mark.parametrize(("body", "charset", "expected", "defect"), [
    ("café €5".encode(), "us-ascii", "café €5", "us-ascii"),
    ("café €5".encode(), None, "café €5", None),
    ("café “€5”".encode("cp1252"), "utf-8", "café “€5”", "utf-8"),
    ("café €5".encode("cp1252"), "iso-8859-1", "café €5", None),      # Latin-1 read as cp1252
    ("café".encode(), "iso-8859-1", "café", "UTF-8"),
    ("café".encode(), "x-unknown", "café", "unknown charset"),
    ("café".encode(), "utf8", "café", None),
    ("café".encode("utf-16"), "utf-16", "café", None),
    (b"caf\x81\x8d", "utf-8", "caf\x81\x8d", "utf-8"),                # undefined in cp1252
    (b"x" * 10, "zlib", "x" * 10, "unknown charset"),                  # bytes codec refused
    (b"+AOk-", "unicode-1-1-utf-7", "é", None),
])
def test_body_charsets(body: bytes, charset: str | None, expected: str,
                       defect: str | None) -> None:
    declared = f"; charset={charset}" if charset else ""
    data = (f"From: a@example.nl\r\nMessage-ID: <1@example.nl>\r\nContent-Type: text/plain{declared}\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + body
    mail = parse(data)
    assert mail.text == expected
    if defect is None:
        assert mail.defects == ()
    else:
        assert any(defect in d for d in mail.defects), mail.defects


def test_utf8_with_one_stray_byte_stays_utf8() -> None:
    body = "één twee drie vier vijf zes".encode() + b"\xff"
    mail = parse(b"From: a@example.nl\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body)
    assert mail.text.startswith("één twee")


# ---------------------------------------------------------------- structure


def _multipart(content_type: str, *parts: str, boundary: str = "b0") -> str:
    inner = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts)
    return f"Content-Type: {content_type}; boundary=\"{boundary}\"\r\n\r\n{inner}--{boundary}--\r\n"


def test_alternative_prefers_plain_and_keeps_html() -> None:
    data = "From: a@example.nl\r\n" + _multipart(
        "multipart/alternative",
        "Content-Type: text/plain; charset=utf-8\r\n\r\nPlat",
        "Content-Type: text/html; charset=utf-8\r\n\r\n<p>Opgemaakt</p>")
    mail = parse(data.encode())
    assert mail.text == "Plat"
    assert mail.html == "<p>Opgemaakt</p>"


def test_alternative_with_empty_plain_uses_html() -> None:
    data = "From: a@example.nl\r\n" + _multipart(
        "multipart/alternative",
        "Content-Type: text/plain; charset=utf-8\r\n\r\n  ",
        "Content-Type: text/html; charset=utf-8\r\n\r\n<p>Alleen <b>hier</b></p>")
    assert parse(data.encode()).text == "Alleen hier"


def test_related_images_and_text_attachments_are_listed() -> None:
    png = base64.b64encode(b"\x89PNG" + bytes(96)).decode()
    related = _multipart(
        "multipart/related",
        "Content-Type: text/html; charset=utf-8\r\n\r\n<p>Zie foto</p><img src=\"cid:i1\">",
        f"Content-Type: image/png; name=\"logo.png\"\r\nContent-ID: <i1>\r\n"
        f"Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n{png}",
        boundary="b1")
    data = "From: a@example.nl\r\n" + _multipart(
        "multipart/mixed",
        related,
        "Content-Type: text/plain; name=\"notes.txt\"\r\nContent-Disposition: attachment; "
        "filename=\"notes.txt\"\r\n\r\nnot the body",
        "Content-Type: text/calendar; charset=utf-8\r\n\r\nBEGIN:VCALENDAR")
    mail = parse(data.encode())
    assert mail.text == "Zie foto"
    assert [(a.filename, a.content_type, a.size) for a in mail.attachments] == [
        ("logo.png", "image/png", 100),
        ("notes.txt", "text/plain", len("not the body")),
        (None, "text/calendar", len("BEGIN:VCALENDAR")),
    ]


def test_rfc2231_and_encoded_filenames() -> None:
    data = "From: a@example.nl\r\n" + _multipart(
        "multipart/mixed",
        "Content-Type: text/plain\r\n\r\nzie bijlage",
        "Content-Type: application/pdf\r\nContent-Disposition: attachment; "
        "filename*=utf-8''factuur%20%E2%82%AC12.pdf\r\n\r\n%PDF",
        "Content-Type: application/pdf; name=\"=?utf-8?Q?bon_=C3=A9=C3=A9n.pdf?=\"\r\n"
        "Content-Disposition: attachment\r\n\r\n%PDF",
        "Content-Type: application/pdf\r\nContent-Disposition: attachment; "
        "filename=\"C:\\\\Users\\\\jan\\\\scan.pdf\"\r\n\r\n%PDF")
    names = [a.filename for a in parse(data.encode()).attachments]
    assert names == ["factuur €12.pdf", "bon één.pdf", "scan.pdf"]


def test_nesting_beyond_the_depth_limit_is_a_defect() -> None:
    inner = "Content-Type: text/plain\r\n\r\ndiep"
    for level in range(MAX_DEPTH + 5):
        inner = _multipart("multipart/mixed", inner, boundary=f"n{level}")
    mail = parse(("From: a@example.nl\r\n" + inner).encode())
    assert mail.text == ""
    assert any("nested deeper" in defect for defect in mail.defects)


def test_hostile_nesting_is_cut_quickly() -> None:
    levels = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'
                     for i in range(5000))
    data = ("From: a@example.nl\r\n" + levels + "Content-Type: text/plain\r\n\r\nx").encode()
    started = time.perf_counter()
    mail = parse(data)
    assert time.perf_counter() - started < 5
    assert any("nested MIME containers" in defect for defect in mail.defects)


def test_message_rfc822_is_an_attachment_not_the_body() -> None:
    data = "From: a@example.nl\r\n" + _multipart(
        "multipart/mixed",
        "Content-Type: text/plain\r\n\r\nzie doorgestuurd",
        "Content-Type: message/rfc822\r\n\r\nFrom: b@example.nl\r\nSubject: oud\r\n\r\noude tekst")
    mail = parse(data.encode())
    assert mail.text == "zie doorgestuurd"
    assert [a.content_type for a in mail.attachments] == ["message/rfc822"]
    assert mail.attachments[0].size > len("oude tekst")


def test_multipart_report_type() -> None:
    data = "From: mailer-daemon@example.nl\r\n" + _multipart(
        "multipart/report; report-type=Delivery-Status",
        "Content-Type: text/plain\r\n\r\nniet afgeleverd",
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nAction: failed")
    mail = parse(data.encode())
    assert (mail.content_type, mail.report_type) == ("multipart/report", "delivery-status")
    assert mail.text == "niet afgeleverd"


def test_malformed_content_type_reads_as_plain_text() -> None:
    mail = parse(b"From: a@example.nl\r\nContent-Type: tekst/\xe9\xe9n\r\n\r\nhallo")
    assert (mail.content_type, mail.text) == ("text/plain", "hallo")


def test_format_flowed_is_joined() -> None:
    data = (b"From: a@example.nl\r\nContent-Type: text/plain; format=flowed; delsp=yes\r\n\r\n"
            b"Een lange zin die door de client is afge \r\nbroken.\r\n> geciteerd en \r\n> door\r\n")
    assert parse(data).text == "Een lange zin die door de client is afgebroken.\n> geciteerd endoor"


# ---------------------------------------------------------------- limits and speed


def test_large_text_part_is_capped() -> None:
    body = ("é" * 1000 + "\n").encode() * 1600          # 3.2 MB of UTF-8
    mail = parse(b"From: a@example.nl\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body)
    assert len(mail.text) <= MAX_TEXT_BYTES
    assert mail.text.startswith("éé")
    assert "\ufffd" not in mail.text                   # cut between characters, not inside one
    assert any("larger than" in defect for defect in mail.defects)


def test_huge_header_is_capped() -> None:
    mail = parse(b"From: a@example.nl\r\nSubject: " + b"x" * 1_000_000 + b"\r\n\r\nbody")
    assert len(mail.subject) <= mime.MAX_HEADER_CHARS
    assert mail.text == "body"


def test_twenty_megabyte_mail() -> None:
    payload = bytes(range(256)) * 60_000                 # 15 MB attachment
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    data = (b'From: a@example.nl\r\nContent-Type: multipart/mixed; boundary="xx"\r\n\r\n'
            b"--xx\r\nContent-Type: text/plain\r\n\r\nzie bijlage\r\n"
            b"--xx\r\nContent-Type: application/zip; name=\"fotos.zip\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"\r\n--xx--\r\n")
    assert len(data) > 20_000_000
    started = time.perf_counter()
    mail = parse(data)
    assert time.perf_counter() - started < 10
    assert mail.text == "zie bijlage"
    assert mail.attachments[0].size == len(payload)


def test_huge_html_converts_quickly() -> None:
    html = ("<p>Hallo <b>wereld</b></p>" * 60_000 + "<a" * 100_000).encode()
    started = time.perf_counter()
    mail = parse(b"From: a@example.nl\r\nContent-Type: text/html\r\n\r\n" + html)
    assert time.perf_counter() - started < 10
    assert mail.text.startswith("Hallo wereld")


# ---------------------------------------------------------------- never raises


@pytest.mark.parametrize("data", [
    b"", b"\r\n", b"\x00" * 100, b"\xff\xfe\xfd", b"From:", b"Content-Type: multipart/mixed\r\n\r\n--",
    b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--",
    b"Content-Type: text/plain; charset*0*=utf-8''a; charset*=b; charset*1=c\r\n\r\nx",
    b"Content-Disposition: attachment; filename*0=a; filename*=b; filename*2=c\r\n\r\nx",
    b"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n",
    b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n!!!!\r\nend\r\n",
])
def test_odd_inputs_do_not_raise(data: bytes) -> None:
    assert_invariants(parse(data))


_FRAGMENTS = [
    b"From: ", b"To: ", b"Subject: ", b"Content-Type: ", b"multipart/mixed; boundary=b",
    b"multipart/alternative; boundary=\"b\"", b"message/rfc822", b"text/html; charset=",
    b"text/plain; charset=x-unknown", b"utf-16", b"utf-7", b"zlib", b"\r\n", b"\n", b"\r\n\r\n",
    b"--b", b"--b--", b"Content-Transfer-Encoding: base64", b"quoted-printable", b"=?utf-8?B?",
    b"=?x?Q?", b"?=", b"=C3=A9", b"=\r\n", b"\xc3", b"\xe9", b"<", b">", b"<!--", b"<![",
    b"<blockquote>", b"&nbsp;", b"(((", b"\"", b"@", b"Date: ", b"Message-ID: ",
    b"filename*0=\"a\"; filename*=b", b"report-type=", b"format=flowed", b" ", b"\t", b"\x00",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_any_bytes_give_an_inbound_mail(data: bytes) -> None:
    assert_invariants(parse(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.binary(max_size=8)), max_size=80))
def test_mime_shaped_bytes_give_an_inbound_mail(pieces: list[bytes]) -> None:
    assert_invariants(parse(b"".join(pieces)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(load_fixtures()), st.lists(
    st.tuples(st.integers(0, 6000), st.integers(0, 40), st.sampled_from(_FRAGMENTS)), max_size=8))
def test_damaged_fixtures_give_an_inbound_mail(
        fixture: EmlFixture, edits: list[tuple[int, int, bytes]]) -> None:
    data = bytearray(fixture.raw)
    for position, cut, insert in edits:
        data[position:position + cut] = insert
    assert_invariants(parse(bytes(data)))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_html_to_text_never_raises(markup: str) -> None:
    assert isinstance(htmltext.html_to_text(markup), str)


# ---------------------------------------------------------------- doctests


@pytest.mark.parametrize("module", [mime, htmltext], ids=lambda m: m.__name__)
def test_doctests(module: Any) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
