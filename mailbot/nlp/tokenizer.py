"""A fast, language-neutral tokenizer for mail: one regular-expression pass.

spaCy's rule-based tokenizer (prefix, suffix and infix rules plus exceptions per token) costs
about 0.5 ms for a 1,500-character mail, more than the rest of the analysis together. The
classifiers and matchers here read lower-case words, so a single C-level regex scan that
keeps words with inner dots, dashes and apostrophes together ("bol.com", "e-mail",
"'s avonds", "89,95") and splits off every other symbol is all they need.

Two choices keep the vocabulary bounded in a daemon that reads mail for months: a token with
a digit becomes its digit shape ("12345678" -> "99999999", "89,95" -> "99,99"), and a token
longer than 30 characters (base64, hashes, URLs) becomes "<long>". Order numbers and amounts
are read from the original text by the entity finder, not from tokens.

Each token's start offset in the original text travels in ``doc.user_data`` so matches found
by regular expressions over the text map back to tokens (``char_span``).

Registered as ``mailbot.MailTokenizer.v1`` so a saved pipeline loads by path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy
from spacy.attrs import LOWER
from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy.vocab import Vocab

TEXT_KEY = "mailbot_text"
STARTS_KEY = "mailbot_starts"
ENDS_KEY = "mailbot_ends"

# A word with inner dots, dashes, apostrophes, slashes or stars ("f*ck"), or any one symbol.
_TOKEN = re.compile(r"\w+(?:(?:[-'’.,/]|\*+)\w+)*|[^\w\s]")
# The same, with the whitespace before each token captured: offsets come from the lengths.
_TOKEN_WS = re.compile(r"(\s*)(\w+(?:(?:[-'’.,/]|\*+)\w+)*|[^\w\s])")
_DIGIT = re.compile(r"\d")
MAX_TOKEN_CHARS = 30


def normal_form(token: str) -> str:
    """What the vocabulary stores for a token (see the module docstring).

    >>> normal_form("Bestelling"), normal_form("12345678"), normal_form("€"), normal_form("x" * 40)
    ('Bestelling', '99999999', '€', '<long>')
    """
    if len(token) > MAX_TOKEN_CHARS:
        return "<long>"
    if token[-1:].isdigit() or token[:1].isdigit() or _DIGIT.search(token):
        return _DIGIT.sub("9", token)
    return token


def words(text: str) -> list[str]:
    """The token forms of ``text`` as the tokenizer makes them (for phrase lists).

    >>> words("Bol.com stuurde 2 e-mails!")
    ['Bol.com', 'stuurde', '9', 'e-mails', '!']
    """
    return [normal_form(t) for t in _TOKEN.findall(text)]


class MailTokenizer:
    """Callable ``text -> Doc``, as spaCy expects of ``nlp.tokenizer``."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self._forms: dict[str, str] = {}

    def __call__(self, text: str) -> Doc:
        pairs = _TOKEN_WS.findall(text)
        forms = self._forms
        tokens = [tok for _, tok in pairs]
        words = [forms.get(tok) or self._form(tok) for tok in tokens]
        # Offsets from the lengths of each (whitespace, token) pair: no match objects needed.
        token_len = numpy.fromiter(map(len, tokens), dtype=numpy.int64, count=len(tokens))
        ends = numpy.cumsum(numpy.fromiter((len(ws) for ws, _ in pairs), dtype=numpy.int64,
                                           count=len(pairs)) + token_len)
        doc = Doc(self.vocab, words=words)
        doc.user_data[TEXT_KEY] = text
        doc.user_data[STARTS_KEY] = ends - token_len
        doc.user_data[ENDS_KEY] = ends
        return doc

    def _form(self, token: str) -> str:
        form = normal_form(token)
        if len(self._forms) < 200_000:  # bounded: junk mail must not grow it forever
            self._forms[token] = form
        return form

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterable[Doc]:
        for text in texts:
            yield self(text)

    # Nothing to save: the tokenizer has no data of its own. spaCy calls these when the
    # pipeline is saved or loaded.
    def to_disk(self, path: str | Path, **kwargs: Any) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def from_disk(self, path: str | Path, **kwargs: Any) -> MailTokenizer:
        return self

    def to_bytes(self, **kwargs: Any) -> bytes:
        return b""

    def from_bytes(self, data: bytes, **kwargs: Any) -> MailTokenizer:
        return self


@registry.tokenizers("mailbot.MailTokenizer.v1")
def create_mail_tokenizer() -> Any:
    def make(nlp: Any) -> MailTokenizer:
        return MailTokenizer(nlp.vocab)

    return make


LOWER_KEY = "mailbot_lower"


def lowers(doc: Doc) -> numpy.ndarray:
    """The lower-case form ids (uint64) of the doc's tokens, computed once per doc: the
    rules, the entities and the features all read them."""
    cached = doc.user_data.get(LOWER_KEY)
    if isinstance(cached, numpy.ndarray) and len(cached) == len(doc):
        return cached
    out = (doc.to_array([LOWER]).astype(numpy.uint64, copy=False).ravel() if len(doc)
           else numpy.zeros((0,), dtype=numpy.uint64))
    doc.user_data[LOWER_KEY] = out
    return out


def doc_text(doc: Doc) -> str:
    """The original text (``Doc.text`` is the normalised token text)."""
    text = doc.user_data.get(TEXT_KEY)
    return text if isinstance(text, str) else doc.text


def char_span(doc: Doc, start: int, end: int, label: str) -> Span | None:
    """The tokens that overlap ``text[start:end]`` of the original text, as a labelled span."""
    starts = doc.user_data.get(STARTS_KEY)
    ends = doc.user_data.get(ENDS_KEY)
    if starts is None or ends is None:  # a doc made by another tokenizer
        return doc.char_span(start, end, label=label, alignment_mode="expand")
    first = int(numpy.searchsorted(ends, start, side="right"))
    last = int(numpy.searchsorted(starts, end, side="left"))
    if first >= last:
        return None
    return Span(doc, first, last, label=label)


def span_text(doc: Doc, span: Span) -> str:
    """The original text under ``span`` (with its digits and spacing)."""
    starts = doc.user_data.get(STARTS_KEY)
    ends = doc.user_data.get(ENDS_KEY)
    if starts is None or ends is None or span.end == 0:
        return span.text
    return doc_text(doc)[int(starts[span.start]):int(ends[span.end - 1])]
