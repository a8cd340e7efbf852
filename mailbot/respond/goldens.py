"""Golden mails (``macros/tests/*.yaml``): an input mail, the expected macro and action.

Admins run them like unit tests (``mailbot macros test``) and CI runs them with the rest of
the suite. Each case goes through the real parser, cleaner, screening and analyzer; fields
pinned under ``analysis:`` replace what the model said, so a case can test the macros and
the policy without depending on the model's mood::

    - name: defect coffee machine, Dutch, frustrated
      mail: {from: "Anneke de Vries <anneke@example.nl>", subject: "...", body: "..."}
      # or: eml: defect-nl.eml          (relative to this file)
      at: "2026-11-23T10:00:00+01:00"   # default: Monday 2026-11-23 10:00 in the policy timezone
      analysis: {tone: frustrated}      # language, category, confidence, tone, signals, entities
      auto_allowed: false               # optional: as if the per-sender limit were reached
      expect:
        macro: refund_defect
        action: draft
        rule: "rules[3] default"        # optional, exact
        contains: ["12345678"]          # optional, substrings of the rendered body
        not_contains: ["{{"]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mailbot.config import Mailbox
from mailbot.errors import DataError, MacroError
from mailbot.models import Analysis, Decision
from mailbot.pipeline import Analyzer
from mailbot.respond import engine
from mailbot.respond.catalog import MacroSet
from mailbot.respond.conditions import ENTITY_KINDS
from mailbot.respond.dryrun import Prepared, analyse_all, decide, mail_bytes, prepare
from mailbot.respond.yamlfile import YamlDoc, key_text, parse_yaml

DEFAULT_AT = (2026, 11, 23, 10, 0)   # a Monday morning, inside usual business hours


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GoldenMail(_Model):
    sender: str | None = Field(None, alias="from")
    subject: str = ""
    body: str = ""


class Pins(_Model):
    language: str | None = None
    category: str | None = None
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    tone: str | None = None
    signals: tuple[str, ...] | None = None
    entities: dict[str, Any] | None = None


class Expect(_Model):
    macro: str | None = None
    action: Literal["send", "draft", "escalate", "ignore"]
    rule: str | None = None
    contains: tuple[str, ...] = ()
    not_contains: tuple[str, ...] = ()


class GoldenCase(_Model):
    name: Annotated[str, Field(min_length=1)]
    mail: GoldenMail | None = None
    eml: str | None = None
    at: datetime | None = None
    analysis: Pins | None = None
    auto_allowed: bool = True
    expect: Expect

    @model_validator(mode="after")
    def _one_source(self) -> GoldenCase:
        if (self.mail is None) == (self.eml is None):
            raise ValueError("give exactly one of mail and eml")
        return self


@dataclass(frozen=True)
class LoadedCase:
    case: GoldenCase
    file: str
    line: int
    data: bytes          # the mail

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class CaseResult:
    loaded: LoadedCase
    problems: tuple[str, ...]
    analysis: Analysis
    decision: Decision

    @property
    def passed(self) -> bool:
        return not self.problems


# ------------------------------------------------------------------ loading


def case_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given, folders expanded to their *.yaml / *.yml files."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            out.append(path)
    return out


def load_cases(paths: Iterable[Path]) -> list[LoadedCase]:
    """Every case of every file. Raises DataError naming the file, line and field."""
    cases: list[LoadedCase] = []
    for path in case_files(paths):
        cases.extend(_load_file(path))
    return cases


def _load_file(path: Path) -> list[LoadedCase]:
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", file=shown) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason})", file=shown) from exc
    try:
        doc = parse_yaml(text, shown)
    except MacroError as exc:
        raise DataError(exc.problem, file=shown, line=exc.line) from exc
    if doc.data is None:
        return []
    if not isinstance(doc.data, list):
        raise DataError("a golden test file is a list of cases (- name: ...)", file=shown, line=1)
    out = []
    for index, raw in enumerate(doc.data):
        line = doc.line((index,)) or 1
        try:
            case = GoldenCase.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = (index, *(p for p in first["loc"] if isinstance(p, str | int)))
            raise DataError(first["msg"], file=shown, line=doc.line(loc),
                            field=key_text(loc[1:]) or None) from exc
        out.append(LoadedCase(case, shown, line, _mail_data(case, path, doc, index)))
    return out


def _mail_data(case: GoldenCase, path: Path, doc: YamlDoc, index: int) -> bytes:
    if case.mail is not None:
        try:
            return mail_bytes(case.mail.subject, case.mail.body, case.mail.sender)
        except DataError as exc:
            raise DataError(exc.problem, file=doc.file, line=doc.line((index, "mail")), field="mail") from exc
    assert case.eml is not None
    eml = path.parent / case.eml
    try:
        return eml.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {eml}: {exc.strerror}", file=doc.file, line=doc.line((index, "eml")),
                        field="eml") from exc


# ------------------------------------------------------------------ running


def pin(analysis: Analysis, pins: Pins | None) -> Analysis:
    """The model's analysis with the pinned fields replaced. Pinning ``category`` gives it
    the score ``confidence`` (default 1.0): the case says what the mail *is*."""
    if pins is None:
        return analysis
    changes: dict[str, Any] = {}
    if pins.language is not None:
        changes["language"] = pins.language
    if pins.tone is not None:
        changes["tone"] = pins.tone
    if pins.signals is not None:
        changes["signals"] = tuple(sorted(pins.signals))
    if pins.entities is not None:
        unknown = set(pins.entities) - set(ENTITY_KINDS)
        if unknown:
            raise DataError(f"unknown entity kind(s) {sorted(unknown)} (one of: {', '.join(ENTITY_KINDS)})",
                            field="analysis.entities")
        changes["entities"] = {**analysis.entities, **pins.entities}
    if pins.category is not None or pins.confidence is not None:
        category = pins.category or analysis.category
        scores = dict(analysis.category_scores)
        scores[category] = pins.confidence if pins.confidence is not None else 1.0
        changes["category"] = category
        changes["category_scores"] = scores
    return dataclasses.replace(analysis, **changes)


def run_cases(cases: Sequence[LoadedCase], macro_set: MacroSet, analyzer: Analyzer, *,
              signature: engine.Signature, mailbox: Mailbox) -> list[CaseResult]:
    prepared: list[Prepared] = [prepare(c.data, mailbox) for c in cases]
    analyses = analyse_all(analyzer, prepared)
    zone = macro_set.policy.zone
    results = []
    for loaded, item, model_analysis in zip(cases, prepared, analyses, strict=True):
        case = loaded.case
        try:
            analysis = pin(model_analysis, case.analysis)
        except DataError as exc:
            raise DataError(exc.problem, file=loaded.file, line=loaded.line, field=exc.field) from exc
        now = case.at or datetime(*DEFAULT_AT, tzinfo=zone)
        if now.tzinfo is None:
            now = now.replace(tzinfo=zone)
        decision = decide(macro_set, item, analysis, signature=signature, now=now,
                          auto_allowed=case.auto_allowed)
        results.append(CaseResult(loaded, tuple(_compare(case, decision)), analysis, decision))
    return results


def _compare(case: GoldenCase, decision: Decision) -> list[str]:
    expect = case.expect
    problems = []
    if expect.macro is not None and decision.macro_id != expect.macro:
        problems.append(f"macro: expected {expect.macro}, got {decision.macro_id}")
    if decision.action.value != expect.action:
        problems.append(f"action: expected {expect.action}, got {decision.action.value} "
                        f"(rule {decision.rule}: {decision.reason})")
    if expect.rule is not None and decision.rule != expect.rule:
        problems.append(f"rule: expected {expect.rule!r}, got {decision.rule!r}")
    if "guard.render_error" in decision.rule and "render_error" not in (expect.rule or ""):
        problems.append(f"the template failed: {decision.reason}")
    body = decision.draft.body if decision.draft else ""
    for text in expect.contains:
        if text not in body:
            problems.append(f"the body does not contain {text!r}")
    for text in expect.not_contains:
        if text in body:
            problems.append(f"the body contains {text!r}")
    return problems
