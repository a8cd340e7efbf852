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

import srsly
import yaml
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from mailbot.nlp.features import RULES_KEY

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
        lang = nlp.lang or ""
        self.set_lexicon(lexicon if lexicon is not None else expand_lemmas(packaged_lexicon(lang), lang))

    def set_lexicon(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self._phrases = PhraseMatcher(self.vocab, attr="LOWER")
        self._regexes = []
        for label, spec in lexicon.items():
            # The same phrase twice would be matched twice.
            phrases = list(dict.fromkeys(p for p in spec.get("phrases", []) if p.strip()))
            if phrases:
                self._phrases.add(label, [self._make_doc(p) for p in phrases])
            regexes = [r for r in spec.get("regex", []) if r.strip()]
            if regexes:
                # One alternation per label over word starts: a single C-level scan per label.
                combined = "|".join(f"(?:{r.lstrip('^').rstrip('$')})" for r in regexes)
                self._regexes.append((label, re.compile(rf"(?<![\w*]){combined}[\w*]*")))

    def _make_doc(self, text: str) -> Doc:
        # Phrases are split like the default tokenizer splits them ("bol.com" stays one token).
        return Doc(self.vocab, words=_phrase_tokens(text))

    def __call__(self, doc: Doc) -> Doc:
        spans: list[Span] = []
        for match_id, start, end in self._phrases(doc):
            spans.append(Span(doc, start, end, label=match_id))
        if self._regexes:
            lowered = doc_text(doc).lower()
            for label, pattern in self._regexes:
                for match in pattern.finditer(lowered):
                    span = doc.char_span(match.start(), match.end(), label=label, alignment_mode="expand")
                    if span is not None:
                        spans.append(span)
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


_PHRASE_TOKEN = re.compile(r"\w+(?:[.'’]\w+)*|[^\w\s]")


def _phrase_tokens(text: str) -> list[str]:
    return _PHRASE_TOKEN.findall(text.lower())


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
DATE_RE = re.compile(
    rf"(?i:\b\d{{1,2}}(?:st|nd|rd|th|e|ste)?\s(?:of\s)?(?:{_MONTHS})\.?(?:\s\d{{4}})?\b"
    rf"|\b(?:{_MONTHS})\.?\s\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s\d{{4}})?\b"
    rf"|\b\d{{1,2}}[/-]\d{{1,2}}(?:[/-]\d{{2,4}})?\b"
    rf"|\b(?:afgelopen|vorige|komende|volgende|last|next|this|deze|on)\s(?:{_DAYS})\b"
    rf"|\b(?:gisteren|eergisteren|vandaag|morgen|overmorgen|yesterday|today|tomorrow)\b"
    rf"|\b(?:vorige|afgelopen|last)\s(?:week|maand|month|jaar|year)\b"
    rf"|\b\d{{1,3}}\s(?:dagen|weken|maanden|days|weeks|months)\s(?:geleden|ago)\b)"
)


class EntityFinder:
    """Order numbers, amounts, dates (regular expressions) and products (a phrase list)."""

    def __init__(self, nlp: Language, name: str, products: list[str] | None = None) -> None:
        self.name = name
        self.vocab = nlp.vocab
        self.products: list[str] = []
        self._products = PhraseMatcher(nlp.vocab, attr="LOWER")
        self.set_products(products if products is not None else packaged_products(nlp.lang or ""))

    def set_products(self, products: list[str]) -> None:
        self.products = products
        self._products = PhraseMatcher(self.vocab, attr="LOWER")
        if products:
            self._products.add("PRODUCT", [Doc(self.vocab, words=_phrase_tokens(p)) for p in products])

    def __call__(self, doc: Doc) -> Doc:
        text = doc_text(doc)
        spans: list[Span] = []
        for label, pattern in (("ORDER", ORDER_RE), ("MONEY", MONEY_RE), ("DATE", DATE_RE)):
            for match in pattern.finditer(text):
                start, end = match.span()
                if label == "ORDER":
                    group = next(g for g in ("id", "hash", "coded", "dated") if match.group(g))
                    start, end = match.span(group)
                span = doc.char_span(start, end, label=label, alignment_mode="expand")
                if span is not None:
                    spans.append(span)
        for _, start, end in self._products(doc):
            spans.append(Span(doc, start, end, label="PRODUCT"))
        doc.ents = filter_spans(spans)
        return doc

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


TEXT_KEY = "mailbot_text"


def doc_text(doc: Doc) -> str:
    """The doc's text. ``Doc.text`` rebuilds the string token by token on every access, which
    costs more than the matching itself; the analyzer leaves the original text in user_data."""
    text = doc.user_data.get(TEXT_KEY)
    return text if isinstance(text, str) else doc.text


def rule_hits(doc: Doc) -> list[tuple[str, str]]:
    """(label, matched text) for every rule match, in text order."""
    spans = doc.spans.get(RULES_KEY) if doc.spans else None
    if not spans:
        return []
    return [(s.label_, s.text) for s in sorted(spans, key=lambda s: s.start)]


def entities(doc: Doc) -> dict[str, Any]:
    """The entities as lists of unique strings per kind, in order of appearance."""
    out: dict[str, list[str]] = {"orders": [], "amounts": [], "dates": [], "products": []}
    key = {"ORDER": "orders", "MONEY": "amounts", "DATE": "dates", "PRODUCT": "products"}
    for ent in doc.ents:
        bucket = out[key[ent.label_]]
        value = ent.text.strip().lstrip("#") if ent.label_ == "ORDER" else ent.text.strip()
        if ent.label_ == "PRODUCT":
            value = value.lower()
        if value not in bucket:
            bucket.append(value)
    return out
