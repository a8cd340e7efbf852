"""Raw RFC 5322 bytes to an :class:`~mailbot.models.InboundMail`. :func:`parse` never raises.

The work, in order::

    bytes   --guard-->    at most MAX_INPUT_BYTES, MAX_CONTAINERS nested containers and
                          MAX_DELIMITER_LINES multipart delimiter lines
            --parser-->   a tree of email.message.Message
    headers               raw value -> unfold -> repair raw 8-bit -> RFC 2047 -> one line
    body                  walk the tree (at most MAX_DEPTH deep, MAX_PARTS parts):
                            text/plain and text/html bodies are text, everything else
                            (inline images, message/rfc822, reports) is an Attachment;
                            multipart/alternative prefers a non-empty text/plain
    text                  the plain parts, else the HTML converted by htmltext.html_to_text

Every problem found on the way becomes a short sentence in ``InboundMail.defects``.

The tree is parsed with ``policy.default``, as the standard library recommends; this module
still decodes header values itself, to survive the charset damage real mail carries (declared
us-ascii but UTF-8, unknown names such as "x-unknown", raw 8-bit), and uses the policy's
strict RFC 5322 address parser for From headers the fast ``email.utils`` parser cannot read.
(``policy.compat32`` parses about 5x faster; at a few ms per mail the daemon does not need it.)
"""

from __future__ import annotations

import binascii
import codecs
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.errors import HeaderParseError, MessageDefect
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from types import MappingProxyType

from mailbot.models import Attachment, InboundMail
from mailbot.text.htmltext import html_to_text

__all__ = [
    "MAX_DEPTH", "MAX_TEXT_BYTES", "STDLIB_EMAIL_ERRORS", "decode_bytes", "decode_header_value",
    "parse",
]

MAX_INPUT_BYTES = 32 * 1024 * 1024   # beyond this the rest of the message is ignored
MAX_TEXT_BYTES = 2 * 1024 * 1024     # decoded per text part, and text kept in total
MAX_HTML_CONVERT = 512 * 1024        # HTML converted to text; html.parser is ~1 s per MB
MAX_DEPTH = 20                       # multipart nesting walked
MAX_CONTAINERS = 64                  # boundary= and message/* declarations parsed at all
MAX_PARTS = 1000
MAX_DELIMITER_LINES = MAX_PARTS + MAX_CONTAINERS  # "--" lines parsed: one per part, one per close
MAX_HEADERS = 500
MAX_HEADER_CHARS = 16 * 1024
MAX_DEFECTS = 50

# Each nested multipart or message/* part costs the feed parser one recursion level and
# one check per body line; counting their declarations bounds both before parsing.
_CONTAINER = re.compile(rb"boundary\s*=|message/", re.IGNORECASE)
# RFC 2046 bchars; a delimiter line is "--" boundary, optionally followed by "--".
_DELIMITER = re.compile(r"^--([0-9A-Za-z'()+_,\-./:=?]{1,70}?)(?:--)?[ \t]*\r?$", re.MULTILINE)
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?]*)\?=")
_ESCAPED_RUN = re.compile("[\udc80-\udcff]+")      # raw 8-bit bytes kept by surrogateescape
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f]")
_NEWLINE = re.compile(r"\r\n?")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_ID_SEPARATORS = MappingProxyType(str.maketrans("<>,", "   "))
_MSG_ID = re.compile(r"<([^<>\s]{1,998})>")
_ADDR_SPEC = re.compile(r"[^\s\x00-\x1f\x7f<>@,;:\"()\[\]]+@[^\s\x00-\x1f\x7f<>@,;:\"()\[\]]+")
_CHARSET_NAME = re.compile(r"[a-z0-9._:+\-]{1,40}")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,128}")

# What the stdlib email package is known to raise on hostile input instead of recording a
# defect (e.g. TypeError from email.utils.decode_params on mixed RFC 2231 continuations).
# Caught only around calls into that package, always turned into a defect.
STDLIB_EMAIL_ERRORS: tuple[type[Exception], ...] = (
    HeaderParseError, TypeError, ValueError, IndexError, AttributeError, LookupError,
)
# email.utils.parseaddr and getaddresses recurse once per nested comment "(((".
_ADDRESS_PARSER_ERRORS: tuple[type[Exception], ...] = (RecursionError, *STDLIB_EMAIL_ERRORS)

# Stdlib defect names that do not explain themselves when split into words.
_DEFECT_WORDS = MappingProxyType({
    "MultipartInvariantViolationDefect": "declared multipart but has no parts",
    "MisplacedEnvelopeHeaderDefect": "mbox 'From ' line inside the headers",
})
# Names mail clients use that Python's codec registry does not know, or knows by a less
# useful codec; "" means "no information, guess".
_CHARSET_ALIASES = MappingProxyType({
    "x-unknown": "", "unknown": "", "unknown-8bit": "", "x-user-defined": "", "default": "",
    "unicode-1-1-utf-7": "utf-7", "utf7": "utf-7",
    "iso-8859-8-i": "iso-8859-8", "iso-8859-6-i": "iso-8859-6",
    "ks_c_5601-1987": "cp949", "x-mac-roman": "mac-roman", "macintosh": "mac-roman",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
    "windows-874": "cp874", "tis-620": "cp874", "x-sjis": "shift_jis",
})
# Codecs that are not plain text decoders or are quadratic on hostile input.
_REFUSED_CODECS = frozenset({
    "idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined",
})
_NOT_ASCII_COMPATIBLE = ("utf-7", "utf-16", "utf-32", "iso2022", "hz")
_SINGLE_BYTE_CODECS = ("cp125", "iso8859", "mac-", "cp437", "cp850", "koi8")
_ASCII_CHARSETS = frozenset({"us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "646"})


# ---------------------------------------------------------------- collecting defects


@dataclass
class _Defects:
    """Short, unique, human-readable problems, capped so a hostile mail cannot flood them."""

    items: list[str] = field(default_factory=list)
    dropped: int = 0

    def add(self, text: str) -> None:
        """Record ``text`` once; beyond MAX_DEFECTS only count it."""
        if text in self.items:
            return
        if len(self.items) < MAX_DEFECTS:
            self.items.append(text)
        else:
            self.dropped += 1

    def add_parser_defects(self, defects: list[MessageDefect], where: str) -> None:
        """Record the stdlib's defects of one part, as words."""
        for defect in defects:
            self.add(f"{where}: {describe_defect(defect)}")

    def result(self) -> tuple[str, ...]:
        """The defects for InboundMail, with a count of any left out."""
        if self.dropped:
            return (*self.items, f"{self.dropped} more defects not listed")
        return tuple(self.items)


def describe_defect(defect: MessageDefect) -> str:
    """The stdlib defect class as words.

    >>> from email.errors import StartBoundaryNotFoundDefect
    >>> describe_defect(StartBoundaryNotFoundDefect())
    'start boundary not found'
    """
    name = type(defect).__name__
    if name in _DEFECT_WORDS:
        return _DEFECT_WORDS[name]
    return _CAMEL.sub(" ", name.removesuffix("Defect")).lower()


# ---------------------------------------------------------------- entry point


def parse(data: bytes) -> InboundMail:
    """Parse raw message bytes; never raises, problems go to ``defects``.

    >>> mail = parse(b"From: Jan <JAN@Example.NL>\\r\\nSubject: Hoi\\r\\n\\r\\nWaar blijft het?\\r\\n")
    >>> mail.from_addr, mail.subject, mail.text
    ('jan@example.nl', 'Hoi', 'Waar blijft het?')
    >>> parse(b"").defects
    ('missing From header', 'missing Message-ID header')
    """
    data = bytes(data)
    defects = _Defects()
    message = _parse_tree(_guard_input(data, defects), defects)
    prepared = _prepared_headers(message, defects)
    decoded = tuple((name, _one_line(decode_header_value(value, defects, where=f"{name} header")))
                    for name, value in prepared)
    from_name, from_addr = _sender(_first(prepared, "from"), defects)
    body = _Body()
    _walk(message, 0, body, defects)
    plain, html = body.joined()
    if html and len(html) > MAX_HTML_CONVERT and not plain.strip():
        defects.add(f"HTML longer than {MAX_HTML_CONVERT} characters; only the start was converted")
    text = plain if plain.strip() else html_to_text(html[:MAX_HTML_CONVERT]) if html else ""
    content_type = _content_type(message, defects)
    return InboundMail(
        message_id=_message_id(_first(decoded, "message-id"), defects),
        subject=_first(decoded, "subject") or "",
        from_name=from_name,
        from_addr=from_addr,
        to=_address_list(prepared, "to"),
        cc=_address_list(prepared, "cc"),
        reply_to=next(iter(_address_list(prepared, "reply-to")), None),
        date=_date(_first(decoded, "date"), defects),
        in_reply_to=_first_id(_first(decoded, "in-reply-to")),
        references=_all_ids(" ".join(v for k, v in decoded if k.lower() == "references")),
        headers=decoded,
        content_type=content_type,
        report_type=_report_type(message) if content_type == "multipart/report" else None,
        text=_scrub(text),
        html=_scrub(html) if html else None,
        attachments=tuple(body.attachments),
        size=len(data),
        defects=defects.result(),
    )


def _guard_input(data: bytes, defects: _Defects) -> bytes:
    """Cut the input so that parsing it is bounded in time, memory and recursion."""
    if len(data) > MAX_INPUT_BYTES:
        defects.add(f"message larger than {MAX_INPUT_BYTES} bytes; the rest was ignored")
        data = data[:MAX_INPUT_BYTES]
    lowered = data.lower()
    if lowered.count(b"boundary") + lowered.count(b"message/") > MAX_CONTAINERS:
        data = _cut_containers(data, defects)
    if b"boundary" in lowered and data.count(b"\n--") > MAX_DELIMITER_LINES:
        # The stdlib parser spends about a millisecond on each MIME part: a 2 MB mail of
        # 45,000 tiny parts took 50 s, 25 MB would take ten minutes. Parts beyond MAX_PARTS
        # are skipped by the walk anyway, so parsing stops at the delimiter line that would
        # start one more ("--" lines in text count too, which only ends the reading sooner).
        cut = -1
        for _ in range(MAX_DELIMITER_LINES + 1):
            cut = data.find(b"\n--", cut + 1)
        defects.add(f"more than {MAX_DELIMITER_LINES} MIME delimiter lines; the rest was ignored")
        data = data[: cut + 1]
    return data


def _cut_containers(data: bytes, defects: _Defects) -> bytes:
    """The input up to the line that declares container MAX_CONTAINERS + 1, if any."""
    for count, match in enumerate(_CONTAINER.finditer(data), start=1):
        if count > MAX_CONTAINERS:
            defects.add(f"more than {MAX_CONTAINERS} nested MIME containers; the rest was ignored")
            return data[: data.rfind(b"\n", 0, match.start()) + 1]
    return data


def _parse_tree(data: bytes, defects: _Defects) -> Message:
    """The MIME tree; headers only if the body cannot be parsed, empty if neither can."""
    parser = BytesParser(policy=email_policy.default)
    try:
        return parser.parsebytes(data)
    except RecursionError:
        # _guard_input should prevent this; keep the headers if it did not.
        defects.add("MIME structure nested too deeply; only the headers were read")
    except STDLIB_EMAIL_ERRORS as exc:
        defects.add(f"MIME structure unparseable ({type(exc).__name__}); only the headers were read")
    try:
        return parser.parsebytes(data, headersonly=True)
    except STDLIB_EMAIL_ERRORS as exc:
        defects.add(f"headers unparseable ({type(exc).__name__}); message read as empty")
        return Message()


# ---------------------------------------------------------------- headers


def _prepared_headers(message: Message, defects: _Defects) -> list[tuple[str, str]]:
    """Every header as (name, value): unfolded, raw 8-bit repaired, still RFC 2047 encoded.

    Address headers are split on these values: decoding first could turn an encoded
    comma or "<" in a display name into syntax.
    """
    out: list[tuple[str, str]] = []
    for index, (name, value) in enumerate(message.raw_items()):
        if index >= MAX_HEADERS:
            defects.add(f"more than {MAX_HEADERS} headers; the rest were ignored")
            break
        text = str(value)
        if len(text) > MAX_HEADER_CHARS:
            defects.add(f"{name} header longer than {MAX_HEADER_CHARS} characters; cut")
            text = text[:MAX_HEADER_CHARS]
        out.append((_one_line(repair_8bit(str(name))), _unfold(repair_8bit(text))))
    return out


def _unfold(value: str) -> str:
    """RFC 5322 unfolding, plus any stray CR or LF, so no line break survives.

    >>> _unfold("Re: bestelling\\r\\n 12345\\nen meer")
    'Re: bestelling 12345 en meer'
    """
    return _NEWLINE.sub("\n", value).replace("\n ", " ").replace("\n\t", " ").replace("\n", " ")


def _one_line(value: str) -> str:
    """Whitespace runs to one space, control characters dropped.

    >>> _one_line("  Bestelling\\t 12345\\x00 ")
    'Bestelling 12345'
    """
    return _scrub(" ".join(_CONTROL.sub("", value).split()))


def repair_8bit(value: str) -> str:
    """Decode raw 8-bit header bytes (kept by the parser as surrogate escapes).

    Clients put raw UTF-8 (RFC 6532) or raw Latin-1 in headers; each run is decoded with
    the UTF-8 -> cp1252 -> Latin-1 fallback.

    >>> repair_8bit("caf\\udcc3\\udca9 / caf\\udce9")
    'café / café'
    """
    if value.isascii():
        return value
    return _ESCAPED_RUN.sub(lambda run: _fallback(run.group().encode("ascii", "surrogateescape")),
                            value)


def decode_header_value(value: str, defects: _Defects | None = None, *,
                        where: str = "header") -> str:
    """Decode RFC 2047 encoded-words, tolerating what real clients get wrong.

    Adjacent words in one charset are decoded together (a character may be split over
    two words); whitespace between encoded words is dropped; a word that does not decode
    is kept as written.

    >>> decode_header_value("=?UTF-8?Q?Re=3A_Bestelling_=E2=80=93_12345?=")
    'Re: Bestelling – 12345'
    >>> decode_header_value("=?utf-8?B?SGFsbG8g?= =?utf-8?B?d2VyZWxk?= !")
    'Hallo wereld !'
    >>> decode_header_value("=?x-unknown?Q?caf=C3=A9?=")
    'café'
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    chunk = bytearray()
    chunk_charset = ""
    last_was_word = False
    pos = 0

    def flush() -> None:
        """Decode the pending run of same-charset encoded-words."""
        if chunk:
            text, problem = decode_bytes(bytes(chunk), chunk_charset or None)
            if problem and defects is not None:
                defects.add(f"{where}: {problem}")
            out.append(text)
            chunk.clear()

    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos:match.start()]
        if gap and not (last_was_word and gap.isspace()):
            flush()
            out.append(gap)
        charset = match.group(1).split("*", 1)[0].lower()   # RFC 2231 language suffix
        raw = _decode_word(match.group(2).lower(), match.group(3))
        if raw is None:
            flush()
            out.append(match.group(0))
            if defects is not None:
                defects.add(f"{where}: undecodable encoded-word kept as written")
            last_was_word = False
        else:
            if charset != chunk_charset:
                flush()
            chunk_charset = charset
            chunk.extend(raw)
            last_was_word = True
        pos = match.end()
    flush()
    out.append(value[pos:])
    return "".join(out)


def _decode_word(encoding: str, text: str) -> bytes | None:
    """The bytes of one encoded-word's text, or None if it is not valid.

    >>> _decode_word("q", "caf=C3=A9_au_lait")
    b'caf\\xc3\\xa9 au lait'
    >>> _decode_word("b", "Y2Fm"), _decode_word("b", "!!!niet-base64")
    (b'caf', None)
    """
    data = text.encode("utf-8")
    if encoding == "q":
        return binascii.a2b_qp(data, header=True)
    data = b"".join(data.split())
    if not _BASE64.fullmatch(data):
        return None         # decoding around junk would turn it into other junk
    data += b"=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        return None


def _first(headers: tuple[tuple[str, str], ...] | list[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (lower-case), or None."""
    return next((value for key, value in headers if key.lower() == name), None)


# ---------------------------------------------------------------- charsets


def decode_bytes(data: bytes, charset: str | None, *,
                 truncated: bool = False) -> tuple[str, str | None]:
    """Decode bytes declared as ``charset``; returns (text, problem or None).

    Wrong declarations are common: us-ascii or no charset with UTF-8 bytes, UTF-8 with
    cp1252 bytes, Latin-1 with UTF-8 bytes. Whatever is declared, bytes that do not fit are
    decoded with the UTF-8 -> cp1252 -> Latin-1 fallback and the mismatch is reported.
    ``truncated`` says the bytes were cut, so a character split at the end is not an error.

    >>> decode_bytes("café".encode(), "us-ascii")
    ('café', "declared 'us-ascii' but contains 8-bit bytes")
    >>> decode_bytes("café €5".encode("cp1252"), "utf-8")
    ('café €5', "bytes do not match charset 'utf-8'")
    >>> decode_bytes("café".encode(), "iso-8859-1")
    ('café', "declared 'iso-8859-1' but the bytes are UTF-8")
    """
    codec = _codec(charset) if charset else None
    if codec is not None and codec.startswith(_NOT_ASCII_COMPATIBLE):
        try:
            return _strict(data, codec, truncated), None
        except (UnicodeError, ValueError):
            return _fallback(data, truncated), f"bytes do not match charset {charset!r}"
    if data.isascii():
        return data.decode("ascii"), (f"unknown charset {charset!r}" if charset and not codec
                                      else None)
    if charset is None:
        return _fallback(data, truncated), None
    if codec is None:
        return _fallback(data, truncated), f"unknown charset {charset!r}"
    if codec == "ascii":
        return _fallback(data, truncated), f"declared {charset!r} but contains 8-bit bytes"
    if codec.startswith(_SINGLE_BYTE_CODECS) and _is_utf8(data, truncated):
        # Real single-byte text practically never forms valid multi-byte UTF-8.
        return _strict(data, "utf-8", truncated), f"declared {charset!r} but the bytes are UTF-8"
    try:
        return _strict(data, codec, truncated), None
    except (UnicodeError, ValueError):
        return _fallback(data, truncated), f"bytes do not match charset {charset!r}"


def _codec(charset: str) -> str | None:
    """Python's codec for a MIME charset name, or None if unknown or refused.

    Latin-1 is read as cp1252, as browsers and mail clients do: Windows mail labelled
    iso-8859-1 carries cp1252 quotes and euro signs.

    >>> _codec("UTF8"), _codec("iso-8859-1"), _codec("x-unknown"), _codec("zlib")
    ('utf-8', 'cp1252', None, None)
    """
    name = charset.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    if not _CHARSET_NAME.fullmatch(name):
        return None
    if name in _ASCII_CHARSETS:
        return "ascii"
    try:
        canonical = codecs.lookup(name).name
        # bytes.decode refuses bytes-to-bytes codecs (zlib, base64, rot13) with LookupError.
        b"\x00\x00\x00\x00".decode(canonical)
    except LookupError:
        return None
    except UnicodeError:
        pass
    if canonical in _REFUSED_CODECS:
        return None
    return "cp1252" if canonical == "iso8859-1" else canonical


def _strict(data: bytes, codec: str, truncated: bool) -> str:
    """Decode strictly; a character cut off by truncation at the end is dropped."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        if truncated and exc.start >= len(data) - 4:
            return data[: exc.start].decode(codec)
        raise


def _is_utf8(data: bytes, truncated: bool) -> bool:
    """The bytes are valid UTF-8 (allowing a cut-off last character if truncated)."""
    try:
        _strict(data, "utf-8", truncated)
    except UnicodeDecodeError:
        return False
    return True


def _fallback(data: bytes, truncated: bool = False) -> str:
    """UTF-8, else mostly-UTF-8 with a few bad bytes, else cp1252, else Latin-1.

    >>> _fallback("één".encode()), _fallback("één".encode("cp1252"))
    ('één', 'één')
    >>> _fallback("één twee drie vier \\x81".encode() + b"\\xff")
    'één twee drie vier \\x81�'
    """
    try:
        return _strict(data, "utf-8", truncated)
    except UnicodeDecodeError:
        pass
    lenient = data.decode("utf-8", errors="replace")
    bad = lenient.count("\ufffd")
    good = len(lenient) - len(lenient.encode("ascii", "ignore")) - bad    # non-ASCII, valid
    if good > bad:
        # Valid multi-byte UTF-8 practically never occurs in cp1252 text by accident, so this
        # is UTF-8 with a few stray bytes: cp1252 would garble every accent in it.
        return lenient
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _scrub(text: str) -> str:
    """Drop NULs and lone surrogates: neither can be stored (PostgreSQL refuses NUL).

    >>> _scrub("a\\x00b\\udce9")
    'ab�'
    """
    text = text.replace("\x00", "")
    if _LONE_SURROGATE.search(text):
        text = _LONE_SURROGATE.sub("\ufffd", text)
    return text


# ---------------------------------------------------------------- addresses, ids, dates


def _sender(raw_from: str | None, defects: _Defects) -> tuple[str, str]:
    """(display name, lower-cased addr-spec) of the From header; ("", "") if unusable."""
    if raw_from is None:
        defects.add("missing From header")
        return "", ""
    try:
        name, addr = parseaddr(raw_from)
    except _ADDRESS_PARSER_ERRORS:
        name, addr = "", ""     # parseaddr recurses once per nested comment "((("
    if not _ADDR_SPEC.fullmatch(addr):
        name, addr = _sender_strict(raw_from, defects)
    name = _display_name(name, defects)
    if not _ADDR_SPEC.fullmatch(addr):
        defects.add(f"From header has no usable address: {_one_line(raw_from)[:80]!r}")
        return name, ""
    return name, addr.lower()


def _sender_strict(raw_from: str, defects: _Defects) -> tuple[str, str]:
    """Second opinion from the policy.default RFC 5322 parser, for odd From headers."""
    if len(raw_from) > 1000:      # the registry parser is slow; real From headers are short
        return "", ""
    try:
        header = email_policy.default.header_factory("from", raw_from)
        addresses = header.addresses
    except _ADDRESS_PARSER_ERRORS as exc:
        defects.add(f"From header unparseable ({type(exc).__name__})")
        return "", ""
    for address in addresses:
        return address.display_name, address.addr_spec
    return "", ""


def _display_name(name: str, defects: _Defects) -> str:
    """Decoded display name without the quotes some clients add.

    >>> _display_name("'=?utf-8?Q?J=C3=A1n?= de Vries'", _Defects())
    'Ján de Vries'
    """
    return _one_line(decode_header_value(name, defects, where="From header")).strip("\"' ")


def _address_list(headers: list[tuple[str, str]], name: str) -> tuple[str, ...]:
    """Lower-cased addr-specs of every header ``name`` (To, Cc, Reply-To)."""
    values = [value for key, value in headers if key.lower() == name]
    if not values:
        return ()
    try:
        pairs = getaddresses(values)
    except _ADDRESS_PARSER_ERRORS:
        return ()       # see _sender: the legacy address parser recurses on nested comments
    return tuple(addr.lower() for _, addr in pairs if _ADDR_SPEC.fullmatch(addr))


def _message_id(value: str | None, defects: _Defects) -> str | None:
    """The Message-ID without brackets; a missing or empty one is a defect."""
    if value is None:
        defects.add("missing Message-ID header")
        return None
    found = _first_id(value)
    if found is None:
        defects.add("empty Message-ID header")
    return found


def _first_id(value: str | None) -> str | None:
    """The first message id in a header, without angle brackets.

    >>> _first_id(" <CAKx=1@mail.gmail.com> (comment)"), _first_id("abc@host"), _first_id(" <")
    ('CAKx=1@mail.gmail.com', 'abc@host', None)
    """
    if value is None:
        return None
    match = _MSG_ID.search(value)
    if match:
        return match.group(1)
    words = _id_words(value)
    return words[0] if words else None


def _all_ids(value: str) -> tuple[str, ...]:
    """Every id in a References header, in order, without duplicates.

    >>> _all_ids("<a@x> <b@x>\\t<a@x>"), _all_ids("a@x, b@x")
    (('a@x', 'b@x'), ('a@x', 'b@x'))
    """
    ids = _MSG_ID.findall(value) or _id_words(value)
    return tuple(dict.fromkeys(ids))


def _id_words(value: str) -> list[str]:
    """Ids written without (balanced) angle brackets: the words between <, >, commas, spaces.

    >>> _id_words("2<MIME-Version: x, y>")
    ['2', 'MIME-Version:', 'x', 'y']
    """
    return value.translate(_ID_SEPARATORS).split()


def _date(value: str | None, defects: _Defects) -> datetime | None:
    """The Date header as an aware datetime; None if missing or unparseable.

    >>> _date("Tue, 4 Mar 2025 10:12:21 +0100", _Defects()).isoformat()
    '2025-03-04T10:12:21+01:00'
    """
    if value is None:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.add(f"unparseable Date header: {value[:60]!r}")
        return None
    # "-0000" means UTC with the sender's zone unknown (RFC 5322 3.3).
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _report_type(message: Message) -> str | None:
    """The report-type parameter of a multipart/report, lower-cased."""
    value = _params(message).get("report-type")
    return value.lower() if value else None


def _params(part: Message, header: str = "content-type") -> dict[str, str]:
    """The parameters of a header by lower-cased name, RFC 2231 values decoded.

    Read once per part: each get_param call re-parses the whole list (~40 µs).

    >>> message = Message()
    >>> message["Content-Type"] = 'text/plain; Charset="utf-8"; format=flowed'
    >>> _params(message)
    {'charset': 'utf-8', 'format': 'flowed'}
    """
    try:
        pairs = part.get_params(None, header) or []
    except STDLIB_EMAIL_ERRORS:
        return {}       # a parameter list the stdlib cannot read; the part is read without it
    params: dict[str, str] = {}
    for name, value in pairs[1:]:       # the first pair is the header's main value
        params.setdefault(str(name).lower(), _param_text(value))
    return params


def _param_text(value: str | tuple[str, str, str]) -> str:
    """A parameter value as text; RFC 2231 (charset, language, value) decoded."""
    if isinstance(value, tuple):
        charset, _, raw = value
        text, _ = decode_bytes(str(raw).encode("raw-unicode-escape"), charset or None)
        return text
    return str(value).strip().strip('"')


# ---------------------------------------------------------------- body


@dataclass
class _Body:
    """What the walk found: text parts, HTML parts and attachments, with budgets."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    parts: int = 0
    plain_chars: int = 0
    html_chars: int = 0

    def joined(self) -> tuple[str, str]:
        """(plain text, HTML) of everything kept, parts separated by a blank line."""
        plain = "\n\n".join(text.strip("\n") for text in self.plain if text.strip())
        return plain, "\n".join(self.html)


def _walk(part: Message, depth: int, body: _Body, defects: _Defects) -> None:
    """Sort one part (and what it contains) into text, HTML and attachments."""
    body.parts += 1
    if body.parts > MAX_PARTS:
        defects.add(f"more than {MAX_PARTS} MIME parts; the rest were skipped")
        return
    content_type = _content_type(part, defects)
    _sort_part(part, content_type, depth, body, defects)
    # After sorting: decoding a payload adds defects (bad base64) to the part.
    defects.add_parser_defects(part.defects, f"{content_type} part" if depth else "message")


def _sort_part(part: Message, content_type: str, depth: int, body: _Body,
               defects: _Defects) -> None:
    """Route a part: message/* and files to attachments, text to the body, multiparts down."""
    maintype = content_type.partition("/")[0]
    if maintype == "message":
        # Forwarded mails, delivery status, read receipts: listed, not read as the body.
        body.attachments.append(_attachment(part, content_type, _Leaf.of(part)))
        return
    if part.is_multipart():
        _walk_children(part, content_type, depth, body, defects)
        return
    if maintype == "multipart":
        recovered = _recover_multipart(part, content_type, defects)
        if recovered is not None:
            _walk_children(recovered, content_type, depth, body, defects)
            return
        defects.add(f"{content_type} without usable boundary; read as plain text")
        _add_text(part, "text/plain", _Leaf.of(part), body, defects)
        return
    leaf = _Leaf.of(part)
    if content_type in ("text/plain", "text/html") and leaf.is_inline(part):
        _add_text(part, content_type, leaf, body, defects)
        return
    body.attachments.append(_attachment(part, content_type, leaf))


def _content_type(part: Message, defects: _Defects) -> str:
    """The part's content type; text/plain for a malformed one, as RFC 2045 5.2 says.

    >>> message = Message()
    >>> message["Content-Type"] = "Text/HTML; charset=utf-8"
    >>> _content_type(message, _Defects())
    'text/html'
    """
    content_type = part.get_content_type()
    if _MIME_TYPE.fullmatch(content_type):
        return content_type
    defects.add(f"malformed Content-Type {content_type[:40]!r}; read as text/plain")
    return "text/plain"


def _walk_children(part: Message, content_type: str, depth: int, body: _Body,
                   defects: _Defects) -> None:
    """Walk a multipart's children; for multipart/alternative keep one plain branch."""
    if depth >= MAX_DEPTH:
        defects.add(f"MIME parts nested deeper than {MAX_DEPTH} levels were skipped")
        return
    children = [child for child in part.get_payload() if isinstance(child, Message)]
    if content_type != "multipart/alternative":
        for child in children:
            _walk(child, depth + 1, body, defects)
        return
    # Walk each alternative on its own, then keep the first with real plain text; HTML
    # and attachments (inline images of the HTML version) are kept from all of them.
    branches: list[_Body] = []
    for child in children:
        branch = _Body(parts=body.parts, plain_chars=body.plain_chars, html_chars=body.html_chars)
        _walk(child, depth + 1, branch, defects)
        body.parts = branch.parts
        branches.append(branch)
    chosen = next((b for b in branches if any(text.strip() for text in b.plain)), None)
    if chosen is not None:
        body.plain.extend(chosen.plain)
        body.plain_chars = chosen.plain_chars
    for branch in branches:
        body.html.extend(branch.html)
        body.html_chars = max(body.html_chars, branch.html_chars)
        body.attachments.extend(branch.attachments)


def _recover_multipart(part: Message, content_type: str, defects: _Defects) -> Message | None:
    """Re-parse a multipart whose boundary is missing or wrong, using one found in the body.

    Mailers that build MIME by hand forget the boundary parameter or declare one and use
    another; the delimiter lines in the body still say what it is.
    """
    # get_payload() without decode would replace every 8-bit byte with U+FFFD.
    payload = _payload(part)
    boundary = _guess_boundary(payload.decode("ascii", "surrogateescape"))
    if boundary is None:
        return None
    header = f'Content-Type: {content_type}; boundary="{boundary}"\r\n\r\n'
    try:
        recovered = BytesParser(policy=email_policy.compat32).parsebytes(
            header.encode("ascii") + payload)
    except RecursionError:
        return None
    if not recovered.is_multipart() or not recovered.get_payload():
        return None
    defects.add(f"{content_type} boundary missing or wrong; used {boundary!r} found in the body")
    return recovered


def _guess_boundary(payload: str) -> str | None:
    """The first delimiter-shaped line that occurs at least twice (opening and closing).

    >>> _guess_boundary("--\\nJan\\n--b1\\nContent-Type: text/plain\\n\\nhoi\\n--b1--\\n")
    'b1'
    >>> _guess_boundary("-------------\\nJan\\n") is None
    True
    """
    for index, match in enumerate(_DELIMITER.finditer(payload)):
        if index >= 5:
            break
        boundary = match.group(1)
        # A boundary has letters or digits; lines of dashes are rules typed by people.
        if any(char.isalnum() for char in boundary) and payload.count("--" + boundary) >= 2:
            return boundary
    return None


@dataclass(frozen=True)
class _Leaf:
    """A leaf part's Content-Type and Content-Disposition parameters, read once."""

    params: dict[str, str]
    disposition: dict[str, str]

    @classmethod
    def of(cls, part: Message) -> _Leaf:
        """Read a part's parameters."""
        return cls(_params(part), _params(part, "content-disposition"))

    def is_inline(self, part: Message) -> bool:
        """A text part is body text unless it is marked or named as a file."""
        if part.get_content_disposition() == "attachment":
            return False
        return "filename" not in self.disposition and "name" not in self.params


def _add_text(part: Message, content_type: str, leaf: _Leaf, body: _Body,
              defects: _Defects) -> None:
    """Decode a text part into the body, within the MAX_TEXT_BYTES budget."""
    is_html = content_type == "text/html"
    used = body.html_chars if is_html else body.plain_chars
    if used >= MAX_TEXT_BYTES:
        defects.add(f"more than {MAX_TEXT_BYTES} characters of {content_type}; the rest skipped")
        return
    text = _part_text(part, content_type, leaf, defects)[: MAX_TEXT_BYTES - used]
    if is_html:
        body.html.append(text)
        body.html_chars += len(text)
    else:
        body.plain.append(text)
        body.plain_chars += len(text)


def _part_text(part: Message, content_type: str, leaf: _Leaf, defects: _Defects) -> str:
    """A text part decoded: transfer encoding, charset, line ends, format=flowed."""
    payload = _payload(part)
    truncated = len(payload) > MAX_TEXT_BYTES
    if truncated:
        defects.add(f"{content_type} part larger than {MAX_TEXT_BYTES} bytes; cut")
        payload = payload[:MAX_TEXT_BYTES]
    text, problem = decode_bytes(payload, leaf.params.get("charset"), truncated=truncated)
    if problem:
        defects.add(f"{content_type} part: {problem}")
    text = _NEWLINE.sub("\n", text)
    if content_type == "text/plain" and leaf.params.get("format", "").lower() == "flowed":
        text = unflow(text, delsp=leaf.params.get("delsp", "").lower() == "yes")
    return text


def _payload(part: Message) -> bytes:
    """The part's bytes with the transfer encoding undone (lenient for broken base64)."""
    try:
        payload = part.get_payload(decode=True)
    except STDLIB_EMAIL_ERRORS:
        return b""
    return payload if isinstance(payload, bytes) else b""


def unflow(text: str, *, delsp: bool = False) -> str:
    """Undo RFC 3676 format=flowed: a line ending in a space continues on the next.

    >>> unflow("Op 3 mrt. 2025 om 10:12 heeft Jan \\nhet volgende geschreven:\\n")
    'Op 3 mrt. 2025 om 10:12 heeft Jan het volgende geschreven:\\n'
    >>> unflow("> a \\n> b\\n-- \\nJan")
    '> a b\\n-- \\nJan'
    """
    out: list[str] = []
    paragraph: list[str] = []
    depth = -1
    for line in text.split("\n"):
        quote = len(line) - len(line.lstrip(">"))
        content = line[quote:]
        content = content[1:] if content.startswith(" ") else content   # space-stuffing
        if paragraph and quote != depth:
            out.append(_flowed_line(depth, paragraph))
            paragraph = []
        depth = quote
        soft = content.endswith(" ") and content != "-- "
        paragraph.append(content[:-1] if soft and delsp else content)
        if not soft:
            out.append(_flowed_line(depth, paragraph))
            paragraph = []
    if paragraph:
        out.append(_flowed_line(depth, paragraph))
    return "\n".join(out)


def _flowed_line(depth: int, pieces: list[str]) -> str:
    """One unflowed line, with its quote depth written back as a prefix."""
    return (">" * depth + " " if depth else "") + "".join(pieces)


# ---------------------------------------------------------------- attachments


def _attachment(part: Message, content_type: str, leaf: _Leaf) -> Attachment:
    """The Attachment for a part that is not body text."""
    if content_type.startswith("message/") or part.is_multipart():
        size = _approximate_size(part)
    else:
        size = len(_payload(part))
    return Attachment(filename=_filename(leaf), content_type=content_type, size=size)


def _filename(leaf: _Leaf) -> str | None:
    """The attachment's file name, decoded, without any directory a client left in it.

    >>> message = Message()
    >>> message["Content-Disposition"] = 'attachment; filename="=?utf-8?Q?factuur_=E2=82=AC.pdf?="'
    >>> _filename(_Leaf.of(message))
    'factuur €.pdf'
    """
    raw = leaf.disposition.get("filename") or leaf.params.get("name")
    if not raw:
        return None
    name = _one_line(decode_header_value(repair_8bit(raw)))
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name or None


def _approximate_size(part: Message) -> int:
    """Size of a message/* part in its encoded form, summed from its pieces.

    Serialising the part with a Generator would be exact, but is slow and can fail on
    the broken mail this module exists to survive.
    """
    size = sum(len(name) + len(str(value)) + 4 for name, value in part.raw_items()) + 2
    if part.is_multipart():
        return size + sum(_approximate_size(child) for child in part.get_payload()
                          if isinstance(child, Message))
    return size + len(_payload(part))
