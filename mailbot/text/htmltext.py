"""HTML mail bodies to readable plain text, with the stdlib ``html.parser``.

What the converter keeps and drops::

    <script>, <style>, <title>, <xml>, <template>   dropped with their content
    <br>                                            one line break
    <p>, <h1>..<h6>                                 a blank line around the block
    <div>, <tr>, <li>, <table>, <ul>, ...           a line break around the block
    <blockquote>                                    every line inside prefixed with "> "
    <hr>                                            a line of 32 underscores (Outlook's separator)
    <a href="https://x">text</a>                    "text (https://x)"; the URL once if it is the text
    &nbsp;, runs of whitespace                      one space

Why blockquotes become "> " lines: Gmail, Apple Mail and Thunderbird put quoted history in a
<blockquote>; rendered as "> " lines, :mod:`mailbot.text.clean` strips them like any plain quote.

Why not html2text: it writes Markdown (``**bold**``, ``[text](url)``), which the language
analysis would then have to unlearn, and it is several times slower on large mails.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

# Elements whose content is never shown to a reader.
_INVISIBLE = frozenset({"script", "style", "title", "xml", "template", "noscript", "svg", "head"})
# Elements that start on their own line.
_BLOCK = frozenset({
    "div", "tr", "table", "ul", "ol", "dl", "dt", "dd", "section", "article", "header",
    "footer", "center", "address", "form", "fieldset", "nav", "aside", "main", "figure",
    "caption", "tbody", "thead", "tfoot", "body", "html",
})
# Elements that are set off by a blank line.
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre"})
_CELL = frozenset({"td", "th"})
_WHITESPACE = re.compile(r"\s+")
_SPACE_RUN = re.compile(r"(?<=\S) {2,}")
_BLANK_RUN = re.compile(r"\n{3,}")
_TAG = re.compile(r"<[^<>]{0,2000}>")
OUTLOOK_RULE = "_" * 32


def html_to_text(markup: str) -> str:
    """Readable text of an HTML mail body.

    >>> html_to_text("<p>Hallo,</p><p>Mijn pakket is <b>nog&nbsp;niet</b> binnen.<br>Groet</p>")
    'Hallo,\\n\\nMijn pakket is nog niet binnen.\\nGroet'
    >>> html_to_text('<style>p{color:red}</style><a href="https://shop.nl/t/1">Volg</a>')
    'Volg (https://shop.nl/t/1)'
    >>> html_to_text("<div>Ja</div><blockquote><div>Vraag?</div></blockquote>")
    'Ja\\n> Vraag?'
    >>> html_to_text('<p class=MsoNormal>Hoi,</p><p class=MsoNormal>&nbsp;</p>'
    ...              '<p class=MsoNormal>Regel 1</p><p class=MsoNormal>Regel 2</p>')
    'Hoi,\\n\\nRegel 1\\nRegel 2'
    """
    converter = _Converter()
    try:
        converter.feed(_defuse(markup))
        converter.close()
    except AssertionError:
        # html.parser's _markupbase raises AssertionError on some malformed declarations
        # ("<![foo["); fall back to dropping tags so the reader still gets the words.
        return _strip_tags(markup)
    return _tidy(converter.text())


def _defuse(markup: str) -> str:
    """Escape every "<" that does not open a tag, and drop comments, in one linear pass.

    html.parser rescans the rest of the input for each "<" it cannot close, which is
    quadratic: 400 KB of "<a" took 290 s. After this pass every "<" it sees ends at a ">"
    before the next "<". Comments go because Outlook's conditional comments hide nothing a
    reader needs and an unclosed one would swallow the mail.

    >>> _defuse("a < b <b>c</b> <!-- x < y --> d")
    'a &lt; b <b>c</b>  d'
    >>> _defuse("<a<a")
    '&lt;a&lt;a'
    """
    out: list[str] = []
    pos = 0
    close = markup.find(">")        # the first ">" not before the current "<"
    while True:
        start = markup.find("<", pos)
        if start < 0:
            out.append(markup[pos:])
            return "".join(out)
        out.append(markup[pos:start])
        if markup.startswith("<!--", start):
            end = markup.find("-->", start + 4)
            if end >= 0:
                pos = end + 3
                close = markup.find(">", pos) if close < pos else close
                continue
        if 0 <= close < start:
            close = markup.find(">", start)
        following = markup.find("<", start + 1)
        opens_tag = start + 1 < len(markup) and (markup[start + 1].isalpha()
                                                 or markup[start + 1] in "/!?")
        if opens_tag and close >= 0 and (following < 0 or close < following):
            out.append(markup[start:close + 1])
            pos = close + 1
        else:
            out.append("&lt;")
            pos = start + 1


def _strip_tags(markup: str) -> str:
    """Crude fallback: remove anything tag-shaped and unescape entities.

    >>> _strip_tags("<b>Hoi</b> &amp; dag")
    'Hoi & dag'
    """
    return _tidy(html.unescape(_TAG.sub(" ", markup)))


def _tidy(text: str) -> str:
    """Strip line ends, collapse inner space runs and blank-line runs.

    >>> _tidy("  a  b \\n\\n\\n\\nc  ")
    'a b\\n\\nc'
    """
    lines = [_SPACE_RUN.sub(" ", line.rstrip()) for line in text.split("\n")]
    return _BLANK_RUN.sub("\n\n", "\n".join(lines)).strip()


def _link_target(href: str) -> str:
    """What of an href is worth showing: web and mail addresses, phone numbers.

    >>> _link_target("mailto:jan@example.nl?subject=Hoi")
    'jan@example.nl'
    >>> _link_target("javascript:void(0)")
    ''
    """
    href = href.strip()
    lowered = href.lower()
    if lowered.startswith(("http://", "https://")):
        return href
    if lowered.startswith("mailto:"):
        return href[7:].split("?", 1)[0]
    if lowered.startswith("tel:"):
        return href[4:]
    return ""


def _bare(link: str) -> str:
    """A link without scheme, "www." and trailing slash, for comparing it with its text.

    >>> _bare("https://www.Shop.nl/")
    'shop.nl'
    """
    link = link.lower()
    for prefix in ("https://", "http://", "mailto:"):
        if link.startswith(prefix):
            link = link[len(prefix):]
    link = link.removeprefix("www.")
    return link.rstrip("/")


class _Converter(HTMLParser):
    """Collects text while tracking line breaks owed and blockquote depth.

    Breaks are owed, not written, so that nested blocks (``<div><div><p>``) produce one
    break and not three; they are paid when the next visible text arrives.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._owed = 0            # line breaks to write before the next text
        self._started = False     # leading breaks are never written
        self._line_start = True
        self._quote = 0           # blockquote depth
        self._hidden = 0          # depth inside invisible elements
        self._pre = 0
        self._anchor: list[str] | None = None
        self._href = ""
        self._outlook_line: int | None = None   # output length when a MsoNormal <p> opened

    def text(self) -> str:
        """Everything written so far, before tidying."""
        return "".join(self._out)

    # ------------------------------------------------------------- tags

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Owe line breaks for blocks, enter hidden or quoted regions, start links."""
        if tag in _INVISIBLE:
            self._hidden += 1
        elif tag == "body":
            # A <head> or <title> someone forgot to close must not hide the whole mail.
            self._hidden = 0
        elif tag == "br":
            self._owed += 1
        elif tag in _PARAGRAPH:
            outlook = tag == "p" and _is_outlook_line(attrs)
            self._outlook_line = len(self._out) if outlook else None
            self._block(1 if outlook else 2)
            self._pre += tag == "pre"
        elif tag in _BLOCK:
            self._block(1)
        elif tag == "li":
            self._block(1)
            self._write("- ")
        elif tag == "blockquote":
            self._block(1)
            self._quote += 1
        elif tag == "hr":
            self._block(1)
            self._write(OUTLOOK_RULE)
            self._block(1)
        elif tag == "a":
            self._anchor = []
            self._href = next((value or "" for name, value in attrs if name == "href"), "")

    def handle_endtag(self, tag: str) -> None:
        """Owe line breaks after blocks, leave hidden or quoted regions, end links."""
        if tag in _INVISIBLE:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "p" and self._outlook_line is not None:
            # An Outlook line ends with a line break; an empty one (&nbsp;) is a blank line.
            self._block(1 if len(self._out) > self._outlook_line else 2)
            self._outlook_line = None
        elif tag in _PARAGRAPH:
            self._block(2)
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
        elif tag in _BLOCK or tag == "li":
            self._block(1)
        elif tag in _CELL:
            self._write(" ")
        elif tag == "blockquote":
            self._block(1)
            self._quote = max(0, self._quote - 1)
        elif tag == "a":
            self._close_anchor()

    def _close_anchor(self) -> None:
        """Write the link target after its text unless the text already shows it."""
        if self._anchor is None:
            return
        shown = "".join(self._anchor).strip()
        self._anchor = None
        target = _link_target(self._href)
        if target and _bare(target) not in _bare(shown):
            self._write(f" ({target})" if shown else target)

    # ------------------------------------------------------------- text

    def handle_data(self, data: str) -> None:
        """Visible text: whitespace collapsed, except inside <pre>."""
        if self._hidden:
            return
        if not self._pre:
            self._write(_WHITESPACE.sub(" ", data))
            return
        for index, line in enumerate(data.split("\n")):
            if index:
                self._owed += 1
            self._write(line)

    def _block(self, breaks: int) -> None:
        """Owe at least ``breaks`` line breaks before the next text."""
        self._owed = max(self._owed, breaks)

    def _write(self, text: str) -> None:
        """Pay owed line breaks (quote prefixes included), then write ``text``."""
        if not self._pre and (self._line_start or self._owed):
            text = text.lstrip(" ")
        if not text:
            return
        if self._owed and self._started:
            blank = ">" * self._quote
            self._out.append("\n" + (blank + "\n") * (min(self._owed, 2) - 1))
            self._line_start = True
        self._owed = 0
        if self._line_start and self._quote:
            self._out.append(">" * self._quote + " ")
        self._out.append(text)
        self._started = True
        self._line_start = False
        if self._anchor is not None:
            self._anchor.append(text)


def _is_outlook_line(attrs: list[tuple[str, str | None]]) -> bool:
    """Outlook writes every line as ``<p class=MsoNormal>``; those are lines, not paragraphs.

    >>> _is_outlook_line([("class", "MsoNormal")])
    True
    """
    return any(name == "class" and value and "msonormal" in value.lower() for name, value in attrs)
