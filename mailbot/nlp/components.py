"""Custom spaCy components of the mail pipeline, registered as spaCy factories.

- ``mailbot_rules``: lexicon matches (swearing, insults, threats, distress, and the signals
  legal_threat, public_threat, misuse, repeat_contact, churn_threat, urgent) into
  ``doc.spans["rules"]``. Phrases go through a PhraseMatcher on the lower-case form; regexes
  (compounds such as "kankerbedrijf", starred spellings such as "f*ck") run as one combined
  pattern per label over the lower-cased text, which is far cheaper than a token-level REGEX
  pattern in spaCy's Matcher. The lexicon is saved with the pipeline, so a trained model is
  self-contained and loads by path.
- ``mailbot_entities``: order numbers, amounts, dates and product mentions into ``doc.ents``
  (labels ORDER, MONEY, DATE, PRODUCT).

Both are stateless per call and cost a few microseconds per mail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy
import srsly
import yaml
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from mailbot.nlp.linear import RULES_KEY
from mailbot.nlp.tokenizer import ENDS_KEY, STARTS_KEY, char_span, doc_text, lowers, span_text, words

Lexicon = dict[str, dict[str, list[str]]]


def packaged_lexicon(lang: str) -> Lexicon:
    """The lexicon shipped in mailbot/nlp/lexicons/<lang>.yaml ({} for other languages)."""
    try:
        text = resources.files("mailbot.nlp").joinpath(f"lexicons/{lang}.yaml").read_text("utf-8")
    except FileNotFoundError:
        return {}
    data = yaml.safe_load(text) or {}
    return {label: {k: [str(v) for v in (spec.get(k) or [])] for k in ("phrases", "regex", "lemmas")}
            for label, spec in data.items()}


def expand_lemmas(lexicon: Lexicon, lang: str) -> Lexicon:
    """Add every inflected form whose lemma is listed under ``lemmas`` (spacy-lookups-data).

    Done once when the pipeline is built, so matching stays a plain phrase lookup at run time.
    """
    wanted = {lemma.lower() for spec in lexicon.values() for lemma in spec.get("lemmas", [])}
    if not wanted:
        return lexicon
    try:
        import gzip

        data = resources.files("spacy_lookups_data").joinpath(f"data/{lang}_lemma_lookup.json.gz")
        table: dict[str, str] = json.loads(gzip.decompress(data.read_bytes()))
    except (ModuleNotFoundError, FileNotFoundError, OSError, ValueError):
        return lexicon
    forms: dict[str, set[str]] = {lemma: {lemma} for lemma in wanted}
    for form, lemma in table.items():
        if lemma in forms:
            forms[lemma].add(form)
    out: Lexicon = {}
    for label, spec in lexicon.items():
        phrases = list(spec.get("phrases", []))
        for lemma in spec.get("lemmas", []):
            phrases.extend(sorted(forms.get(lemma.lower(), {lemma})))
        out[label] = {**spec, "phrases": list(dict.fromkeys(p.lower() for p in phrases)), "lemmas": []}
    return out


class RuleMatcher:
    """Finds lexicon matches and stores them as labelled spans in ``doc.spans["rules"]``."""

    def __init__(self, nlp: Language, name: str, lexicon: Lexicon | None = None) -> None:
        self.name = name
        self.vocab = nlp.vocab
        self.lexicon: Lexicon = {}
        self._phrases = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._regexes: list[tuple[str, re.Pattern[str]]] = []
        self._word_labels: dict[int, tuple[str, ...]] = {}
        lang = nlp.lang or ""
        self.set_lexicon(lexicon if lexicon is not None else expand_lemmas(packaged_lexicon(lang), lang))

    def set_lexicon(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self._phrases = PhraseMatcher(self.vocab, attr="LOWER")
        self._regexes = []
        self._word_labels = {}
        for label, spec in lexicon.items():
            # The same phrase twice would be matched twice.
            phrases = list(dict.fromkeys(p for p in spec.get("phrases", []) if p.strip()))
            if phrases:
                self._phrases.add(label, [self._make_doc(p) for p in phrases])
            regexes = [r for r in spec.get("regex", []) if r.strip()]
            if regexes:
                # Regexes describe the start of one word ("kanker..." compounds, "f*ck"): each
                # distinct word of a mail is tested once, and the answer remembered.
                combined = "|".join(f"(?:{r.lstrip('^').rstrip('$')})" for r in regexes)
                self._regexes.append((label, re.compile(combined)))

    def _make_doc(self, text: str) -> Doc:
        return Doc(self.vocab, words=_phrase_tokens(text))

    def _labels_of(self, word: str) -> tuple[str, ...]:
        return tuple(label for label, pattern in self._regexes if pattern.match(word))

    def __call__(self, doc: Doc) -> Doc:
        spans: list[Span] = []
        for match_id, start, end in self._phrases(doc):
            spans.append(Span(doc, start, end, label=match_id))
        if self._regexes and len(doc):
            lower = lowers(doc)
            known = self._word_labels
            hits = {}
            for key in numpy.unique(lower).tolist():
                labels = known.get(key)
                if labels is None:
                    labels = self._labels_of(doc.vocab.strings[key])
                    if len(known) >= 200_000:
                        known.clear()  # bounded: junk mail must not grow it forever
                    known[key] = labels
                if labels:
                    hits[key] = labels
            if hits:
                for i, key in enumerate(lower.tolist()):
                    for label in hits.get(key, ()):
                        spans.append(Span(doc, i, i + 1, label=label))
        # A word found by a phrase and a regex of the same label is one piece of evidence.
        unique = {(s.label, s.start, s.end): s for s in spans}
        doc.spans[RULES_KEY] = list(unique.values())
        return doc

    # -- serialisation: the lexicon travels with the trained pipeline

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "lexicon.json", self.lexicon)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> RuleMatcher:
        self.set_lexicon(srsly.read_json(Path(path) / "lexicon.json"))
        return self

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        return json.dumps(self.lexicon).encode("utf-8")

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = ()) -> RuleMatcher:
        self.set_lexicon(json.loads(data))
        return self


def _phrase_tokens(text: str) -> list[str]:
    # Phrases are split exactly as the tokenizer splits mail, or they would never match.
    return words(text.lower())


@Language.factory("mailbot_rules", default_config={"lexicon": None})
def make_rules(nlp: Language, name: str, lexicon: Lexicon | None) -> RuleMatcher:
    return RuleMatcher(nlp, name, lexicon)


# ---------------------------------------------------------------- entities

_ORDER_KEYWORDS = (
    r"bestel(?:ling)?(?:s)?(?:nummer|nr|no)?|order(?:nummer|nr|no|number| number| no| nr| id)?|"
    r"ordernr|factuur(?:nummer|nr)?|invoice(?: number| no)?|retour(?:nummer|nr)?|rma|zaaknummer|"
    r"dossier(?:nummer)?|ticket(?:nummer| number)?|case(?: number)?|referentie(?:nummer)?|"
    r"reference(?: number)?|ref|klantnummer|customer number|contractnummer|lidnummer|"
    r"abonnementsnummer|account number|track(?:ing)?(?: ?& ?trace| number| code)?"
)
ORDER_RE = re.compile(
    rf"(?i:\b(?:{_ORDER_KEYWORDS}))\s*(?:[:#.]|\bnr\.?|\bno\.?)?\s*(?P<id>#?[A-Z0-9][A-Z0-9\-/]{{3,24}}\d[A-Z0-9]*)"
    r"|(?P<hash>#\d{4,12})\b"
    r"|\b(?P<coded>[A-Z]{2,5}-[0-9][A-Z0-9]{2,}(?:-[A-Z0-9]+)*)\b"
    r"|\b(?P<dated>20\d{2}[-/]\d{3,8})\b"
)
MONEY_RE = re.compile(
    r"(?:€|EUR|eur|£|GBP|\$|USD)\s?\d{1,3}(?:[.,\s]\d{3})*(?:[.,]\d{1,2}|,-)?"
    r"|\b\d{1,3}(?:[.,]\d{3})*(?:[.,]\d{1,2}|,-)?\s?(?:€|euro'?s?|eur\b|EUR\b|pounds?\b|quid\b|dollars?\b|£)",
)
_MONTHS = (
    r"jan(?:uari|uary)?|feb(?:ruari|ruary)?|maa(?:rt)?|mar(?:ch)?|apr(?:il)?|mei|may|jun[ie]?|jul[iy]?|"
    r"aug(?:ustus|ust)?|sep(?:t(?:ember)?)?|o[ck]t(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_DAYS = (
    r"maandag|dinsdag|woensdag|donderdag|vrijdag|zaterdag|zondag|monday|tuesday|wednesday|thursday|"
    r"friday|saturday|sunday"
)
# Dates are found by two patterns: those that hold a digit ("3 mei", "12/05", "2 weeks ago")
# and those led by a word ("May 3", "vorige week", "gisteren"). Each runs only near the tokens
# that can start it (see EntityFinder._windows).
DATE_NUM_RE = re.compile(
    rf"\b\d{{1,2}}(?:st|nd|rd|th|e|ste)?\s(?:of\s)?(?i:{_MONTHS})\.?(?:\s\d{{4}})?\b"
    rf"|\b\d{{1,2}}[/-]\d{{1,2}}(?:[/-]\d{{2,4}})?\b"
    rf"|\b\d{{1,3}}\s(?i:dagen|weken|maanden|days|weeks|months)\s(?i:geleden|ago)\b"
)
DATE_WORD_RE = re.compile(
    rf"(?i:\b(?:{_MONTHS})\.?\s\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s\d{{4}})?\b"
    rf"|\b(?:afgelopen|vorige|komende|volgende|last|next|this|deze|on)\s(?:{_DAYS})\b"
    rf"|\b(?:gisteren|eergisteren|vandaag|morgen|overmorgen|yesterday|today|tomorrow)\b"
    rf"|\b(?:vorige|afgelopen|last)\s(?:week|maand|month|jaar|year)\b)"
)
# Words that start or make a date without a digit (DATE_WORD_RE).
_DATE_WORDS = frozenset((
    "januari january februari february maart march april mei may juni june juli july augustus "
    "august september oktober october november december jan feb mar apr jun jul aug sep sept "
    "okt oct nov dec maandag dinsdag woensdag donderdag vrijdag zaterdag zondag monday tuesday "
    "wednesday thursday friday saturday sunday gisteren eergisteren vandaag morgen overmorgen "
    "yesterday today tomorrow week maand month jaar year").split())
_NUMBER, _DATE_WORD = 1, 2


_NUMBER_PATTERNS = (("ORDER", ORDER_RE), ("MONEY", MONEY_RE), ("DATE", DATE_NUM_RE))
_WORD_PATTERNS = (("DATE", DATE_WORD_RE),)


def _merge(at: list[int], starts: numpy.ndarray, ends: numpy.ndarray, before: int,
           after: int) -> list[tuple[int, int]]:
    """Character ranges covering ``before`` tokens before and ``after`` after each token in
    ``at``, overlapping ranges merged."""
    windows: list[tuple[int, int]] = []
    n = len(starts)
    for i in at:
        a, b = int(starts[max(0, i - before)]), int(ends[min(n, i + after + 1) - 1])
        if windows and a <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(b, windows[-1][1]))
        else:
            windows.append((a, b))
    return windows


class EntityFinder:
    """Order numbers, amounts, dates (regular expressions) and products (a phrase list)."""

    def __init__(self, nlp: Language, name: str, products: list[str] | None = None) -> None:
        self.name = name
        self.vocab = nlp.vocab
        self.products: list[str] = []
        self._products = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._kinds: dict[int, int] = {}
        self.set_products(products if products is not None else packaged_products(nlp.lang or ""))

    def set_products(self, products: list[str]) -> None:
        self.products = products
        self._products = PhraseMatcher(self.vocab, attr="LOWER")
        if products:
            self._products.add("PRODUCT", [Doc(self.vocab, words=_phrase_tokens(p)) for p in products])

    def __call__(self, doc: Doc) -> Doc:
        text = doc_text(doc)
        spans: list[Span] = []
        numbers, words = self._windows(doc, text)
        for patterns, windows in ((_NUMBER_PATTERNS, numbers), (_WORD_PATTERNS, words)):
            for start, end in windows:
                segment = text[start:end]
                for label, pattern in patterns:
                    for match in pattern.finditer(segment):
                        a, b = match.span()
                        if label == "ORDER":
                            group = next(g for g in ("id", "hash", "coded", "dated") if match.group(g))
                            a, b = match.span(group)
                        span = char_span(doc, start + a, start + b, label)
                        if span is not None:
                            spans.append(span)
        for _, start, end in self._products(doc):
            spans.append(Span(doc, start, end, label="PRODUCT"))
        doc.ents = filter_spans(spans)
        return doc

    def _windows(self, doc: Doc, text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The stretches of text worth running the patterns over: around tokens with a digit
        (orders, amounts, numeric dates) and around date words ("gisteren", "May").

        The patterns cost per character and most of a mail is neither; a few tokens either
        side cover an order keyword before a number and a currency or month after it.
        """
        starts, ends = doc.user_data.get(STARTS_KEY), doc.user_data.get(ENDS_KEY)
        if starts is None or ends is None:  # a doc from another tokenizer: the whole text
            whole = [(0, len(text))] if text else []
            return whole, whole
        kinds, strings = self._kinds, doc.vocab.strings
        numbers: list[int] = []
        dates: list[int] = []
        keys: list[int] = lowers(doc).tolist()
        for i, key in enumerate(keys):
            kind = kinds.get(key)
            if kind is None:
                word = strings[key]
                kind = _NUMBER if "9" in word else _DATE_WORD if word in _DATE_WORDS else 0
                if len(kinds) >= 200_000:
                    kinds.clear()  # bounded: junk mail must not grow it forever
                kinds[key] = kind
            if kind == _NUMBER:
                numbers.append(i)
            elif kind == _DATE_WORD:
                dates.append(i)
        return _merge(numbers, starts, ends, 5, 3), _merge(dates, starts, ends, 1, 5)

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "products.json", self.products)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> EntityFinder:
        self.set_products(srsly.read_json(Path(path) / "products.json"))
        return self

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        return json.dumps(self.products).encode("utf-8")

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = ()) -> EntityFinder:
        self.set_products(json.loads(data))
        return self


def packaged_products(lang: str) -> list[str]:
    try:
        text = resources.files("mailbot.nlp").joinpath(f"lexicons/products_{lang}.txt").read_text("utf-8")
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@Language.factory("mailbot_entities", default_config={"products": None})
def make_entities(nlp: Language, name: str, products: list[str] | None) -> EntityFinder:
    return EntityFinder(nlp, name, products)


def rule_hits(doc: Doc) -> list[tuple[str, str]]:
    """(label, matched text) for every rule match, in text order."""
    spans = doc.spans.get(RULES_KEY) if doc.spans else None
    if not spans:
        return []
    return [(s.label_, span_text(doc, s)) for s in sorted(spans, key=lambda s: s.start)]


def entities(doc: Doc) -> dict[str, Any]:
    """The entities as lists of unique strings per kind, in order of appearance."""
    out: dict[str, list[str]] = {"orders": [], "amounts": [], "dates": [], "products": []}
    key = {"ORDER": "orders", "MONEY": "amounts", "DATE": "dates", "PRODUCT": "products"}
    for ent in doc.ents:
        bucket = out[key[ent.label_]]
        text = span_text(doc, ent)
        value = text.strip().lstrip("#") if ent.label_ == "ORDER" else text.strip()
        if ent.label_ == "PRODUCT":
            value = value.lower()
        if value not in bucket:
            bucket.append(value)
    return out
