"""A small macro set written to tmp_path, and helpers to make mails and analyses.

The tests use their own macros (not the seed content in macros/), so each test says exactly
which macro and which rule it is about.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mailbot.models import Analysis, CleanText, InboundMail
from mailbot.nlp.analyzer import Analyzer
from mailbot.respond import Responder
from mailbot.respond.dryrun import mail_bytes
from mailbot.text.clean import clean
from mailbot.text.mime import parse

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=AMSTERDAM)
COMPANY = {"name": "Example Shop", "contact_person": "Sanne de Vries", "phone": "+31 20 123 4567",
           "website": "https://www.example.com"}

SNIPPETS = {
    "greeting.nl": "{{ salutation }}\n",
    "greeting.en": "{{ salutation }}\n",
    "signoff.nl": "Met vriendelijke groet,\n\n{{ agent }}\n{{ company.name }}\n",
    "signoff.en": "Kind regards,\n\n{{ agent }}\n{{ company.name }}\n",
}


def _macro(mid: str, when: str, *, priority: int = 0, do: str = "action: reply", nl: str, en: str) -> str:
    def variant(body: str) -> str:
        return textwrap.indent(body.strip("\n") + "\n", " " * 6)
    return (f"id: {mid}\ndescription: The {mid} macro.\npriority: {priority}\n"
            f"when: {when}\ndo:\n  {do}\n"
            f"templates:\n  nl:\n    subject: \"{{{{ reply_subject }}}}\"\n    body: |\n{variant(nl)}"
            f"  en:\n    subject: \"{{{{ reply_subject }}}}\"\n    body: |\n{variant(en)}")


MACROS = {
    "refund.yaml": _macro(
        "refund", "{categories: [refund]}", priority=40,
        do="action: reply\n  tags: [refund]\n  offer: {kind: refund, max_amount: 150}",
        nl='{% include "greeting.nl" %}\n\n{{ problem }} Wij betalen {{ amount | default("het bedrag") }} '
           'terug.\n{% if order is defined %}Bestelling: {{ order }}.{% endif %}\n\n'
           '{% include "signoff.nl" %}',
        en='{% include "greeting.en" %}\n\n{{ problem }} We refund {{ amount | default("the amount") }}.\n'
           '{% if order is defined %}Order: {{ order }}.{% endif %}\n\n{% include "signoff.en" %}'),
    "defect.yaml": _macro(
        "defect_replace", "{categories: [defect], not_signals: [misuse]}", priority=30,
        nl='{% include "greeting.nl" %}\n\n{{ problem }} Wij sturen een nieuw exemplaar.\n\n'
           '{% include "signoff.nl" %}',
        en='{% include "greeting.en" %}\n\n{{ problem }} We will send a new one.\n\n'
           '{% include "signoff.en" %}'),
    "praise.yaml": _macro(
        "praise_thanks", "{categories: [praise]}", priority=10,
        nl='{% include "greeting.nl" %}\n\nDank u wel!\n{% if customer_words is defined %}U schreef: '
           '"{{ customer_words }}"{% endif %}\nOnderwerp: {{ subject }}\n\n{% include "signoff.nl" %}',
        en='{% include "greeting.en" %}\n\nThank you!\n{% if customer_words is defined %}You wrote: '
           '"{{ customer_words }}"{% endif %}\nSubject: {{ subject }}\n\n{% include "signoff.en" %}'),
    "threat.yaml": ("id: threat_escalate\ndescription: Threats go to a person.\npriority: 100\n"
                    "when: {tones: [threatening]}\ndo: {action: escalate, tags: [threat]}\n"),
    "ask.yaml": _macro(
        "ask_what_they_want", "{}",
        nl='{% include "greeting.nl" %}\n\n{{ problem }} Wat kunnen wij voor u doen?\n\n'
           '{% include "signoff.nl" %}',
        en='{% include "greeting.en" %}\n\n{{ problem }} What can we do for you?\n\n'
           '{% include "signoff.en" %}'),
}

POLICY = """\
timezone: Europe/Amsterdam
business_hours:
  days: [mon, tue, wed, thu, fri]
  start: "08:30"
  end: "17:30"
  holidays: ["2026-12-25"]
auto_send_min_confidence: 0.80
fallback_macro: ask_what_they_want
rules:
  - id: threats
    when: {tones: [threatening]}
    action: escalate
  - id: praise
    when: {macros: [praise_thanks]}
    action: send
  - id: refunds
    when: {macros: [refund]}
    action: send
  - id: defects
    when: {categories: [defect]}
    action: send
  - id: other-ignored
    when: {categories: [other]}
    action: ignore
  - id: default
    action: draft
"""


@dataclass
class MacroWorld:
    """A macros folder and a policy file in tmp_path that a test may edit."""

    root: Path

    @property
    def macros(self) -> Path:
        return self.root / "macros"

    @property
    def policy(self) -> Path:
        return self.root / "config" / "policy.yaml"

    def write(self, macros: Mapping[str, str] | None = None, snippets: Mapping[str, str] | None = None,
              policy: str | None = None) -> MacroWorld:
        (self.macros / "snippets").mkdir(parents=True, exist_ok=True)
        self.policy.parent.mkdir(parents=True, exist_ok=True)
        for name, text in (macros if macros is not None else MACROS).items():
            (self.macros / name).write_text(text, encoding="utf-8")
        for name, text in (snippets if snippets is not None else SNIPPETS).items():
            (self.macros / "snippets" / f"{name}.j2").write_text(text, encoding="utf-8")
        self.policy.write_text(policy if policy is not None else POLICY, encoding="utf-8")
        return self

    def edit(self, name: str, text: str) -> Path:
        path = self.macros / name      # "refund.yaml" or "snippets/greeting.nl.j2"
        path.write_text(text, encoding="utf-8")
        return path

    def responder(self, **kwargs: Any) -> Responder:
        return Responder(self.macros, self.policy, company=COMPANY, agent="Sanne de Vries", **kwargs)


@pytest.fixture
def world(tmp_path: Path) -> MacroWorld:
    return MacroWorld(tmp_path).write()


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    """The shipped model, loaded once (about 3 seconds)."""
    return Analyzer.load()


def analysis(category: str = "refund", *, language: str = "nl", confidence: float = 0.95,
             tone: str = "neutral", signals: tuple[str, ...] = (), **entities: Any) -> Analysis:
    ents: dict[str, Any] = {"orders": [], "amounts": [], "dates": [], "products": [], "customer_name": None}
    ents.update(entities)
    return Analysis(language=language, category=category, category_scores={category: confidence},
                    tone=tone, tone_scores={tone: 0.9}, signals=tuple(sorted(signals)), entities=ents,
                    explanation=[f"category {category}"])


def mail(subject: str = "Vraag", body: str = "Hallo, ik heb een vraag over mijn bestelling.",
         sender: str | None = "Anneke de Vries <anneke@example.nl>") -> tuple[InboundMail, CleanText]:
    parsed = parse(mail_bytes(subject, body, sender))
    return parsed, clean(parsed.text)
