"""The hostile and broken mail corpus, built in code so nothing large is committed.

Every case is a function of nothing (deterministic bytes); the big ones (25 MB, 200-level
nesting, thousands of recipients, compression bombs) are built when a test asks for them.
To look at the files with a mail client or ``mailbot respond``::

    .venv/bin/python -m tests.hostile.corpus OUTDIR          # small cases only
    .venv/bin/python -m tests.hostile.corpus OUTDIR --large  # also the big ones

Groups (``Case.group``): ``mime`` malformed structure, ``charset`` wrong or unknown charsets
and codec tricks, ``nesting`` deep trees, ``size`` huge mail and huge headers, ``recipients``
thousands of addresses, ``injection`` CRLF in names and subjects, ``template`` Jinja2 syntax in
every customer-controlled field, ``html`` scripts and remote content, ``bomb`` compressed
content declared as text or attached.
"""

from __future__ import annotations

import base64
import gzip
import io
import random
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cache, partial
from pathlib import Path

CRLF = "\r\n"
DATE = format_datetime(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
MB = 1024 * 1024

# Template syntax a customer might type; in a rendered draft each must appear exactly as written.
TEMPLATE_PROBES: tuple[str, ...] = (
    "{{ 7*7 }}",
    "{% for i in range(3) %}LOOP{% endfor %}",
    "{{ ''.__class__.__mro__ }}",
    "{% include 'signoff.nl' %}",
    "{{ company.phone }}",
    "{# comment #}",
)


@dataclass(frozen=True)
class Case:
    """One hostile mail. ``large`` cases are skipped by the quick export."""

    name: str
    group: str
    build: Callable[[], bytes]
    note: str
    large: bool = False

    @property
    def data(self) -> bytes:
        return _built(self.name, self.build) if not self.large else self.build()


@cache
def _built(name: str, build: Callable[[], bytes]) -> bytes:
    return build()


def message(headers: list[tuple[str, str]] | None = None, body: str | bytes = "Mijn bestelling is kapot.",
            *, sender: str = "Jan Klant <jan@example.nl>", subject: str = "Bestelling kapot",
            message_id: str | None = "auto", content_type: str | None = "text/plain; charset=utf-8",
            n: int = 0) -> bytes:
    """A CRLF message; ``headers`` come after From/To/Subject/Date/Message-ID."""
    lines = [f"From: {sender}", "To: Support <support@shop.example>", f"Subject: {subject}", f"Date: {DATE}"]
    if message_id == "auto":
        lines.append(f"Message-ID: <hostile-{n}-{zlib.crc32((sender + subject).encode())}@example.nl>")
    elif message_id:
        lines.append(f"Message-ID: {message_id}")
    lines += [f"{k}: {v}" for k, v in headers or []]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    head = (CRLF.join(lines) + CRLF + CRLF).encode("utf-8", "surrogateescape")
    return head + (body if isinstance(body, bytes) else body.encode("utf-8"))


def _multipart(boundary: str, parts: list[bytes], *, close: bool = True) -> bytes:
    out = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts)
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


def _part(content_type: str, body: bytes | str, extra: str = "") -> bytes:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return f"Content-Type: {content_type}\r\n{extra}\r\n".encode() + data


# ------------------------------------------------------------------ malformed MIME


def _missing_boundary() -> bytes:
    body = _multipart("b1", [_part("text/plain", "Mijn stoel is kapot, bestelling 12345678.")])
    return message(body=body, content_type="multipart/mixed", n=1)


def _wrong_boundary() -> bytes:
    body = _multipart("used", [_part("text/plain", "Wanneer komt mijn pakket?"),
                               _part("application/pdf", b"%PDF-1.4 junk")])
    return message(body=body, content_type='multipart/mixed; boundary="declared"', n=2)


def _unterminated() -> bytes:
    body = _multipart("b1", [_part("text/plain", "Eerste deel"), b"Content-Type: text/html\r\n\r\n<p>half"],
                      close=False)
    return message(body=body, content_type='multipart/alternative; boundary="b1"', n=3)


def _no_separator() -> bytes:
    return b"From: jan@example.nl\r\nSubject: geen lege regel\r\nDit is de body zonder lege regel\r\n"


def _header_soup() -> bytes:
    return (b"From jan@example.nl Mon Nov  2 09:00:00 2026\r\n"      # mbox line
            b"From: Jan <jan@example.nl>\r\nno colon here\r\n: empty name\r\n"
            b"X-\x00Nul: a\x00b\r\nSubject: soep\r\n\tfolded start\r\n"
            b"Content-Type: text/plain; ;;; charset\r\n"
            b"\r\nBody met \x00 NUL \x01 en \x7f.\r\n")


def _nul_everywhere() -> bytes:
    return bytes(b if i % 3 else 0 for i, b in enumerate(message(n=5)))


def _binary_junk() -> bytes:
    return random.Random(6).randbytes(64 * 1024)


def _bare_cr() -> bytes:
    return message(n=6).replace(b"\r\n", b"\r")


def _broken_transfer_encodings() -> bytes:
    body = _multipart("b1", [
        _part("text/plain; charset=utf-8", "SGFsbG8g!!!kapot***===",
              "Content-Transfer-Encoding: base64\r\n"),
        _part("text/plain; charset=utf-8", "=E2=8=\r\nhal=\r\nlo=ZZ=",
              "Content-Transfer-Encoding: quoted-printable\r\n"),
        _part("text/plain", "begin 644 x\r\n#0V%T\r\n`\r\nend\r\n",
              "Content-Transfer-Encoding: x-uuencode\r\n"),
        _part("text/plain", "ignored", "Content-Transfer-Encoding: gzip\r\n"),
    ])
    return message(body=body, content_type='multipart/mixed; boundary="b1"', n=7)


def _rfc2231_mixed() -> bytes:
    # Mixed encoded and plain RFC 2231 continuations make email.utils.decode_params raise.
    attachment = _part("application/octet-stream", "eA==",
                       "Content-Transfer-Encoding: base64\r\n"
                       "Content-Disposition: attachment; filename*0*=utf-8''a%E2; filename*1=b.pdf;"
                       " filename*2*=%ZZ\r\n")
    body = _multipart("b1", [_part("text/plain", "Zie bijlage."), attachment])
    return message(body=body, content_type='multipart/mixed; boundary="b1"; name*0*=x; name*1="y"', n=8)


def _nested_comments() -> bytes:
    return message(sender="(" * 5000 + "jan@example.nl" + ")" * 5000, subject="(" * 3000, n=9)


def _bad_content_types() -> bytes:
    body = _multipart("b1", [_part("text/", "leeg subtype"), _part("/", "alleen slash"),
                             _part("text/plain; charset=" + "x" * 10_000, "lange charset"),
                             _part("\x00/\x01", "controle")])
    return message(body=body, content_type='multipart/mixed; boundary="b1"', n=10)


def _many_parts() -> bytes:
    parts = [_part("text/plain", f"deel {i}") for i in range(5000)]
    return message(body=_multipart("b1", parts), content_type='multipart/mixed; boundary="b1"', n=11)


def _eight_bit_headers() -> bytes:
    head = ("From: Jérôme Müller <jerome@example.nl>\r\nSubject: Waar blijft mijn café-set €50?\r\n"
            "Message-ID: <8bit@example.nl>\r\n").encode()
    latin = "To: Ana Peña <ana@example.es>\r\nX-Latin: señor\r\n".encode("latin-1")
    return head + latin + b"Content-Type: text/plain\r\n\r\nCaf\xe9 kapot \xc3\xa9\r\n"


def _encoded_word_garbage() -> bytes:
    return message(sender="=?utf-8?B?////?= =?x?Q?=ZZ?= <ew@example.nl>",
                   subject="=?utf-8?Q?caf=C3?= =?utf-16?B?2D3eAA==?= =?" + "a" * 200 + "?Q?x?= =?=?",
                   n=12)


# ------------------------------------------------------------------ charsets


def _charset_part(charset: str, data: bytes) -> bytes:
    return _part(f'text/plain; charset="{charset}"', data)


def _charsets() -> bytes:
    parts = [
        _charset_part("x-unknown", "Onbekende charset: café".encode()),
        _charset_part("foo-bar-99", b"Verzonnen charset \xe9"),
        _charset_part("utf-8", "Gezegd utf-8, eigenlijk cp1252: café €5".encode("cp1252")),
        _charset_part("us-ascii", "Gezegd ascii, eigenlijk utf-8: ü".encode()),
        _charset_part("utf-16", b"\xff\xfe\x00\xd8 oneven"),
        _charset_part("utf-7", b"+AGEAYgBj- +ZZZ-"),
        _charset_part("iso-2022-jp", b"\x1b$B\x1b(Bkapot\x1b$)"),
        _charset_part("shift_jis", b"\x82\xa0\xff\xfe"),
    ]
    return message(body=_multipart("b1", parts), content_type='multipart/mixed; boundary="b1"', n=13)


def _codec_tricks() -> bytes:
    # Python codec names that are not text encodings: none may be used to "decode" a body
    # (zlib would decompress, base64/hex/uu would decode, idna/punycode are slow on junk).
    payload = gzip.compress(b"x" * 1_000_000)
    parts = [_charset_part(name, payload if name.startswith(("zlib", "zip", "bz2")) else b"SGFsbG8=")
             for name in ("zlib", "zlib_codec", "bz2", "base64", "hex", "uu", "rot13", "idna", "punycode",
                          "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "utf-32")]
    return message(body=_multipart("b1", parts), content_type='multipart/mixed; boundary="b1"', n=14)


# ------------------------------------------------------------------ nesting


def nested_multipart(levels: int) -> bytes:
    """``levels`` multipart/mixed containers, each holding the next; the text at the bottom."""
    inner = _part("text/plain", "Helemaal onderin: bestelling 12345678 is kapot.")
    for level in reversed(range(levels)):
        inner = _part(f'multipart/mixed; boundary="lvl{level}"', _multipart(f"lvl{level}", [inner]))
    return message(body=inner.split(b"\r\n", 2)[2],
                   content_type='multipart/mixed; boundary="lvl0"', n=15)


def nested_rfc822(levels: int) -> bytes:
    """A forward of a forward of ... ``levels`` deep (message/rfc822 parts)."""
    inner = message(subject="binnenste", n=16)
    for _ in range(levels):
        inner = message(subject="Fwd", body=inner, content_type="message/rfc822", n=16)
    return inner


# ------------------------------------------------------------------ size


def huge_text(size: int = 25 * MB) -> bytes:
    line = "Mijn bestelling 12345678 is kapot en ik wil graag een nieuwe. " * 20 + "\r\n"
    return message(body=line * (size // len(line)), subject="Groot", n=17)


def huge_attachment(size: int = 25 * MB) -> bytes:
    blob = base64.encodebytes(random.Random(17).randbytes(size * 3 // 4)).replace(b"\n", b"\r\n")
    body = _multipart("b1", [_part("text/plain", "Foto van de schade in de bijlage."),
                             _part("image/jpeg", blob, "Content-Transfer-Encoding: base64\r\n"
                                   'Content-Disposition: attachment; filename="schade.jpg"\r\n')])
    return message(body=body, content_type='multipart/mixed; boundary="b1"', subject="Foto", n=18)


def huge_html(size: int = 5 * MB) -> bytes:
    cell = "<div><span>kapot</span> <b>bestelling</b> <i>12345678</i></div>\r\n"
    return message(body="<html><body>" + cell * (size // len(cell)) + "</body></html>",
                   content_type="text/html; charset=utf-8", subject="HTML groot", n=19)


def _huge_headers() -> bytes:
    headers = [(f"X-Spam-{i}", "x" * 50) for i in range(5000)]
    headers.append(("X-Long", "y" * 200_000))
    return message(headers, subject="z" * 100_000, n=20)


def _long_line() -> bytes:
    return message(body="kapot " * 200_000, n=21)


# ------------------------------------------------------------------ recipients


def many_recipients(count: int = 5000) -> bytes:
    to = ", ".join(f"Klant {i} <klant{i}@example.nl>" for i in range(count))
    cc = ", ".join(f"cc{i}@example.org" for i in range(count))
    return message([("Cc", cc), ("Reply-To", to)], sender="Jan <jan@example.nl>",
                   body="Hallo,\r\n\r\nDank jullie wel voor de snelle levering en de vriendelijke hulp, "
                        "echt geweldige service!\r\n\r\nGroet,\r\nJan\r\n", subject="Bedankt!",
                   n=22).replace(b"To: Support <support@shop.example>", f"To: {to}".encode())


# ------------------------------------------------------------------ header injection


def _encoded(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


PRAISE = ("Hallo,\r\n\r\nDank jullie wel voor de snelle levering en de vriendelijke hulp, echt geweldige "
          "service!\r\n\r\nGroet,\r\nJan\r\n")
# (name, From header, Subject header, extra headers): every way a line break can hide in a
# value that ends up in the reply's headers (To display name, Subject, In-Reply-To,
# References, Reply-To). The bodies are praise, so the policy sends them without an agent.
INJECTIONS: tuple[tuple[str, str, str, list[tuple[str, str]]], ...] = (
    ("encoded_crlf_subject", "Jan <inj1@example.nl>", _encoded("Bedankt\r\nBcc: victim@evil.example"), []),
    ("encoded_lf_name", _encoded("Jan\nBcc: victim@evil.example") + " <inj2@example.nl>", "Bedankt!", []),
    ("encoded_crlf_name_quoted", '"' + _encoded("Jan\r\n\r\nInjected body") + '" <inj3@example.nl>',
     "Bedankt!", []),
    ("unicode_separators", _encoded("Jan\u2028Bcc: victim@evil.example\u0085X: y") + " <inj4@example.nl>",
     _encoded("Bedankt\u2029Cc: victim@evil.example"), []),
    ("bare_cr_subject", "Jan <inj5@example.nl>", "Bedankt\rBcc: victim@evil.example", []),
    ("encoded_message_id", "Jan <inj6@example.nl>", "Bedankt!",
     [("Message-ID", _encoded("<inj6@example.nl>\r\nBcc: victim@evil.example")),
      ("References", _encoded("<a@x>\r\nBcc: victim@evil.example <b@x>"))]),
    ("reply_to_with_crlf", "Jan <inj7@example.nl>", "Bedankt!",
     [("Reply-To", _encoded("victim@evil.example\r\nBcc: other@evil.example") + " <inj7@example.nl>")]),
    ("nul_and_controls", _encoded("Jan\x00\x1b[2J\x07") + " <inj8@example.nl>",
     _encoded("Bedankt\x00\x0bBcc: victim@evil.example"), []),
)


def injection_mail(index: int) -> bytes:
    name, sender, subject, extra = INJECTIONS[index]
    message_id = None if any(k == "Message-ID" for k, _ in extra) else f"<{name}@example.nl>"
    return message(extra, body=PRAISE, sender=sender, subject=subject, message_id=message_id)


# ------------------------------------------------------------------ template syntax


def template_mail(probe: str, n: int) -> bytes:
    """``probe`` in the subject, the From name, the sign-off, the body and an attachment name.

    The body is a complaint with no other macro fitting, so the fallback macro quotes the
    customer's own words (``customer_words``) and the subject; the praise-free text keeps it
    a draft, which the test approves to see the reply bytes too.
    """
    body = (f"Beste,\r\n\r\nIk ben echt niet blij met hoe {probe} ik door jullie medewerker ben behandeld. "
            f"Dit is de derde keer.\r\n\r\nMet vriendelijke groet,\r\nJan {probe}\r\n")
    attachment = _part("application/pdf", "JVBERi0=", "Content-Transfer-Encoding: base64\r\n"
                       f'Content-Disposition: attachment; filename="{probe}.pdf"\r\n')
    parts = [_part("text/plain; charset=utf-8", body), attachment]
    return message(body=_multipart("b1", parts), content_type='multipart/mixed; boundary="b1"',
                   sender=f'"Jan {probe}" <tpl{n}@example.nl>', subject=f"Klacht {probe}",
                   message_id=f"<tpl-{n}@example.nl>")


# ------------------------------------------------------------------ HTML


def _script_html() -> bytes:
    html = ('<html><head><script>alert("xss")</script><style>body{background:url(http://evil.example/bg.png)}'
            '</style><link rel="stylesheet" href="http://evil.example/x.css">'
            '<meta http-equiv="refresh" content="0;url=http://evil.example/"></head>'
            '<body onload="alert(1)"><p>Mijn bestelling 12345678 is kapot.</p>'
            '<img src="http://evil.example/track.png?u=1" onerror="alert(2)">'
            '<iframe src="http://evil.example/frame"></iframe><object data="http://evil.example/o.swf"></object>'
            '<a href="javascript:alert(3)">klik</a><svg onload="alert(4)"><script>alert(5)</script></svg>'
            '<scr<script>ipt>alert(6)</script></body></html>')
    return message(body=html, content_type="text/html; charset=utf-8", subject="HTML met script", n=23)


# ------------------------------------------------------------------ compression bombs


@cache
def gzip_bomb() -> bytes:
    """A few KB that gunzip to 1 MB, which gunzips to 1 GiB of zeros (multi-member gzip).

    Built from one compressed 16 MiB member repeated, so making it costs ~50 ms.
    """
    member = gzip.compress(b"\0" * (16 * MB), compresslevel=9)
    return gzip.compress(member * 64, compresslevel=9)


@cache
def zip_bomb() -> bytes:
    """A zip of 16 zips, each holding the gzip bomb under a .txt name: nested, 16 GiB declared."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("readme.txt.gz", gzip_bomb())
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(16):
            archive.writestr(f"deel{i}.zip", inner.getvalue())
    return outer.getvalue()


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _bomb_as_text() -> bytes:
    # Declared as plain text in base64 and tagged like HTTP content coding: still only bytes.
    return message([("Content-Transfer-Encoding", "base64"), ("Content-Encoding", "gzip")],
                   body=_b64(gzip_bomb()), n=24)


def _bomb_attachments() -> bytes:
    parts = [
        _part("text/plain", "Zie de bijlagen."),
        _part("text/plain; charset=zlib", _b64(gzip_bomb()), "Content-Transfer-Encoding: base64\r\n"),
        _part("text/html; charset=utf-8", _b64(gzip_bomb()), "Content-Transfer-Encoding: base64\r\n"
              "Content-Encoding: gzip\r\n"),
        _part("application/gzip", _b64(gzip_bomb()), "Content-Transfer-Encoding: base64\r\n"
              'Content-Disposition: attachment; filename="log.txt.gz"\r\n'),
        _part("application/zip", _b64(zip_bomb()), "Content-Transfer-Encoding: base64\r\n"
              'Content-Disposition: attachment; filename="42.zip"\r\n'),
        _part("text/plain", _b64(zip_bomb()), "Content-Transfer-Encoding: base64\r\n"
              'Content-Disposition: inline; filename="notes.txt"\r\n'),
    ]
    return message(body=_multipart("b1", parts), content_type='multipart/mixed; boundary="b1"', n=25)


# ------------------------------------------------------------------ the list


def cases() -> list[Case]:
    """Every case, small ones first."""
    small = [
        Case("missing_boundary", "mime", _missing_boundary, "multipart without a boundary parameter"),
        Case("wrong_boundary", "mime", _wrong_boundary, "declared boundary differs from the one used"),
        Case("unterminated", "mime", _unterminated, "no closing delimiter, part cut off"),
        Case("no_separator", "mime", _no_separator, "no blank line between headers and body"),
        Case("header_soup", "mime", _header_soup, "mbox line, header without colon, NUL in names"),
        Case("nul_everywhere", "mime", _nul_everywhere, "every third byte NUL"),
        Case("binary_junk", "mime", _binary_junk, "64 KB of random bytes"),
        Case("empty", "mime", lambda: b"", "zero bytes"),
        Case("bare_cr", "mime", _bare_cr, "old Mac line ends only"),
        Case("broken_transfer_encodings", "mime", _broken_transfer_encodings,
             "bad base64, qp, uuencode, gzip CTE"),
        Case("rfc2231_mixed", "mime", _rfc2231_mixed, "mixed RFC 2231 continuations (stdlib TypeError)"),
        Case("nested_comments", "mime", _nested_comments, "5,000 nested comments in From (recursion)"),
        Case("bad_content_types", "mime", _bad_content_types, "malformed types, a 10 KB charset name"),
        Case("many_parts", "mime", _many_parts, "5,000 flat MIME parts"),
        Case("eight_bit_headers", "charset", _eight_bit_headers, "raw UTF-8 and Latin-1 in headers"),
        Case("encoded_word_garbage", "charset", _encoded_word_garbage, "undecodable RFC 2047 words"),
        Case("wrong_charsets", "charset", _charsets, "unknown, wrong and broken multi-byte charsets"),
        Case("codec_tricks", "charset", _codec_tricks, "zlib, base64, rot13, idna ... as charset names"),
        Case("huge_headers", "size", _huge_headers, "5,000 headers, a 200 KB header, a 100 KB subject"),
        Case("long_line", "size", _long_line, "a 1.2 MB body line"),
        Case("script_html", "html", _script_html, "script, event handlers, remote images/styles/frames"),
        Case("bomb_as_text", "bomb", _bomb_as_text, "gzip bomb declared text/plain base64"),
        Case("bomb_attachments", "bomb", _bomb_attachments,
             "gzip/zip bombs as attachments, text and charset"),
    ]
    large = [
        Case("nesting_200", "nesting", lambda: nested_multipart(200), "200 nested multiparts", large=True),
        Case("nesting_rfc822_200", "nesting", lambda: nested_rfc822(200), "200 nested forwards", large=True),
        Case("recipients_5000", "recipients", many_recipients, "5,000 To, 5,000 Cc, 5,000 Reply-To",
             large=True),
        Case("html_5mb", "size", huge_html, "5 MB of HTML, no text part", large=True),
        Case("text_25mb", "size", huge_text, "25 MB text body", large=True),
        Case("attachment_25mb", "size", huge_attachment, "25 MB base64 attachment", large=True),
    ]
    injections = [Case(f"inject_{name}", "injection", partial(injection_mail, i), "CRLF in headers")
                  for i, (name, *_rest) in enumerate(INJECTIONS)]
    templates = [Case(f"template_{i}", "template", partial(template_mail, p, i), f"probe {p}")
                 for i, p in enumerate(TEMPLATE_PROBES)]
    return [*small, *injections, *templates, *large]


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for case in cases():
        if case.large and "--large" not in argv:
            continue
        (out / f"{case.group}-{case.name}.eml").write_bytes(case.data)
        print(f"{case.group}-{case.name}.eml  {len(case.data):>10,} bytes  {case.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
