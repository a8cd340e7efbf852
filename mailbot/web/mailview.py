"""The original mail as an agent sees it: text, sanitised HTML, headers, attachments.

Customer HTML is hostile until proven otherwise. Three layers keep it inert:

1. ``sanitise_html`` (nh3, the Rust ammonia sanitiser) keeps a small set of layout tags,
   drops scripts, styles, forms, frames, event handlers, ``style`` attributes (CSS can
   fetch through ``url()``), every link target and every image that is not a ``data:``
   image, so nothing in the mail can make the browser fetch or navigate anywhere;
2. the result is shown in an ``<iframe sandbox srcdoc=...>``: no scripts, an opaque origin;
3. every page carries ``Content-Security-Policy: default-src 'self'; img-src 'self' data:``,
   which the srcdoc frame inherits, so even a sanitiser bug could not load remote content.

The plain text is what agents read first; Jinja's autoescaping makes ``<script>`` in it text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import nh3

from mailbot.models import Attachment
from mailbot.store import Mail
from mailbot.text.clean import clean
from mailbot.text.mime import parse

_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "center", "code", "dd", "del", "div",
    "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li",
    "ol", "p", "pre", "s", "small", "span", "strike", "strong", "sub", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul",
})
_ATTRIBUTES = {
    "a": {"title"},                       # no href: a click must not load a remote page
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "ol": {"start"},
}
# Dropped with everything inside them, not just the tags.
_CLEAN_CONTENT = frozenset({"script", "style", "title", "noscript", "template", "iframe",
                            "object", "embed", "svg", "math", "head", "textarea", "select"})
_DATA_IMAGE = re.compile(r"^data:image/(?:png|gif|jpeg|webp);base64,[A-Za-z0-9+/=\s]+$")
# Anything in the markup that would make a browser fetch from elsewhere, for the banner.
_REMOTE = re.compile(r"""(?:src|href|background|poster|action|srcset)\s*=\s*["']?\s*(?:https?:)?//"""
                     r"""|url\(\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
SHOWN_HEADERS = ("From", "Reply-To", "To", "Cc", "Date", "Subject", "Message-ID")
MAX_SHOWN_TEXT = 200_000


def _keep_attribute(tag: str, name: str, value: str) -> str | None:
    if tag == "img" and name == "src":
        return value if _DATA_IMAGE.match(value) else None
    return value


def sanitise_html(markup: str) -> str:
    """Customer HTML reduced to inert layout markup.

    >>> sanitise_html('<p onclick="x()">Hoi<script>alert(1)</script></p><img src="http://e.x/t.gif">')
    '<p>Hoi</p><img>'
    >>> sanitise_html('<a href="https://evil.example">klik</a><div style="background:url(//e.x)">x</div>')
    '<a rel="noopener noreferrer">klik</a><div>x</div>'
    """
    return nh3.clean(
        markup,
        tags=set(_TAGS),
        clean_content_tags=set(_CLEAN_CONTENT),
        attributes={tag: set(names) for tag, names in _ATTRIBUTES.items()},
        attribute_filter=_keep_attribute,
        url_schemes={"data"},
        strip_comments=True,
    )


def count_remote_references(markup: str) -> int:
    """How many remote fetches the mail's HTML asked for (all blocked), for the banner.

    >>> count_remote_references('<img src="http://a/x"><div style="background: url(https://b/y)">')
    2
    """
    return len(_REMOTE.findall(markup))


@dataclass(frozen=True, slots=True)
class OriginalView:
    headers: tuple[tuple[str, str], ...]
    body: str                       # the customer's own words
    quoted: str                     # what they quoted, and their signature
    html: str | None                # sanitised, for the sandboxed frame
    remote_blocked: int
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...]
    purged: bool                    # retention removed the bytes: only the stored text is left


def original_view(mail: Mail) -> OriginalView:
    """Parse the stored bytes again (never raises) and prepare them for display."""
    if mail.raw is None:
        return OriginalView(headers=(("From", mail.from_addr), ("Subject", mail.subject)),
                            body=mail.text or "", quoted="", html=None, remote_blocked=0,
                            attachments=(), defects=(), purged=True)
    parsed = parse(mail.raw)
    text = parsed.text[:MAX_SHOWN_TEXT]
    cleaned = clean(text)
    body = cleaned.body if cleaned.body.strip() else text
    rest = "\n\n".join(part for part in (cleaned.quoted, cleaned.signature) if part.strip())
    wanted = {name.lower() for name in SHOWN_HEADERS}
    headers = tuple((name, value) for name, value in parsed.headers if name.lower() in wanted)
    html = None
    blocked = 0
    if parsed.html:
        html = sanitise_html(parsed.html)
        blocked = count_remote_references(parsed.html)
    return OriginalView(headers=headers, body=body, quoted=rest if body is not text else "",
                        html=html, remote_blocked=blocked, attachments=parsed.attachments,
                        defects=parsed.defects, purged=False)
