"""Training data validation, language detection, lexicon rules and entities."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy

from mailbot.errors import DataError
from mailbot.nlp.components import entities, rule_hits
from mailbot.nlp.data import parse_line, read_jsonl
from mailbot.nlp.language import detect

CORPUS = Path(__file__).resolve().parents[2] / "mailbot" / "nlp" / "corpus"


@pytest.mark.parametrize(("line", "field", "problem"), [
    ('{"subject": "x", "body": "y"', None, "not valid JSON"),
    ('["x"]', None, "JSON object"),
    ('{"subject": "x", "body": "y"}', "category", "missing"),
    ('{"subject": "x", "body": 3, "category": "refund"}', "body", "must be a string"),
    ('{"subject": "x", "body": "y", "category": "refund", "signals": "urgent"}', "signals", "list"),
    ('{"subject": "x", "body": "y", "category": ""}', "category", "must not be empty"),
])
def test_invalid_lines_name_the_line_and_field(tmp_path: Path, line: str, field: str | None,
                                              problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"subject": "a", "body": "b", "category": "refund"})
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_jsonl(path)
    message = str(info.value)
    assert f"{path}:3" in message and problem in message
    if field:
        assert f"field {field!r}" in message


def test_line_without_tone_is_valid() -> None:
    example = parse_line('{"subject": "", "body": "hoi", "category": "mijn_eigen_label"}')
    assert example.tone is None and example.signals is None and example.category == "mijn_eigen_label"


def test_corpus_is_complete_and_well_formed() -> None:
    rows = [json.loads(line) for name in ("train", "dev", "test")
            for line in (CORPUS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 2000
    bodies = [r["body"] for r in rows]
    assert len(set(bodies)) == len(bodies), "a mail is in two splits"
    for lang in ("nl", "en"):
        mine = [r for r in rows if r["language"] == lang]
        for category in ("refund", "return", "defect", "delivery", "wrong_item", "cancellation", "billing",
                         "service", "question", "praise", "other"):
            assert sum(r["category"] == category for r in mine) >= 40, (lang, category)
        for tone in ("neutral", "frustrated", "distressed", "abusive", "threatening"):
            assert sum(r["tone"] == tone for r in mine) >= 40, (lang, tone)


@pytest.mark.parametrize(("text", "lang"), [
    ("Waar blijft mijn pakket? Ik heb het al twee weken geleden besteld.", "nl"),
    ("Where is my parcel? I ordered it two weeks ago and still nothing.", "en"),
    ("", "unknown"),
    ("\x00\x01\x02 ÿÿÿ ###", "unknown"),
    ("😡😡😡 !!!", "unknown"),
    ("Bestellung nicht angekommen, bitte helfen Sie mir", "unknown"),
])
def test_language_detection(text: str, lang: str) -> None:
    assert detect(text)[0] == lang


def _nlp(lang: str) -> spacy.language.Language:
    nlp = spacy.blank(lang)
    nlp.add_pipe("mailbot_rules")
    nlp.add_pipe("mailbot_entities")
    return nlp


def test_rules_find_threats_insults_and_signals() -> None:
    doc = _nlp("nl")("Stelletje oplichters! Ik weet waar jullie magazijn staat. Mijn advocaat "
                     "belt morgen en ik zet het op Facebook. Dit is al de derde keer.")
    labels = {label for label, _ in rule_hits(doc)}
    assert {"insult", "threat", "legal_threat", "public_threat", "repeat_contact"} <= labels
    doc = _nlp("en")("You f*cking morons. I know where you live. My solicitor will be in touch.")
    labels = {label for label, _ in rule_hits(doc)}
    assert {"swear", "insult", "threat", "legal_threat"} <= labels


def test_entities() -> None:
    doc = _nlp("nl")("Bestelling 2026-004512 van 3 maart: de wasmachine (€ 649,95) is kapot. "
                     "Ordernummer: NL-88231, zie ook #558213.")
    found = entities(doc)
    assert {"2026-004512", "NL-88231", "558213"} <= set(found["orders"])
    assert "€ 649,95" in found["amounts"]
    assert "3 maart" in found["dates"]
    assert "wasmachine" in found["products"]
