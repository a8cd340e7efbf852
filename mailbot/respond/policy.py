"""``config/policy.yaml``: which action a mail gets, and the guards no rule can switch off.

Evaluation order (docs/macros.md):

1. the first rule whose ``when`` matches gives ``send | draft | escalate | ignore``
   (no rule matches: ``draft``, rule ``policy.default``);
2. built-in guards: a ``send`` becomes ``draft`` -- or ``escalate`` for a threatening tone or
   a legal threat -- when the tone is abusive or threatening, a legal or public threat is
   present, the category confidence is under ``auto_send_min_confidence``, an offer is above
   its cap, it is outside business hours, or the per-sender limit is reached. An ``ignore``
   is turned the same way by the tone and threat guards: those mails always reach a person;
3. a macro whose ``do.action`` is ``escalate`` escalates.

The rule string records each step: ``rules[1] praise-thanks -> guard.abusive_tone``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mailbot.models import Action, Analysis
from mailbot.respond.conditions import When
from mailbot.respond.findings import Finding, error, warning
from mailbot.respond.macros import Macro
from mailbot.respond.variables import amount_value
from mailbot.respond.yamlfile import YamlDoc, key_text, read_spec

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleWhen(When):
    """A macro ``when`` plus ``macros:``, the ids of the macros the rule is about."""

    macros: tuple[str, ...] | None = None

    def matches_mail(self, analysis: Analysis, macro_id: str | None) -> bool:
        if self.macros is not None and macro_id not in self.macros:
            return False
        return self.matches(analysis)

    def covers(self, other: When) -> bool:
        if self.macros is not None:
            theirs = getattr(other, "macros", None)
            if theirs is None or not set(theirs) <= set(self.macros):
                return False
        return super().covers(other)

    def satisfiable(self) -> bool:
        return self.macros != () and super().satisfiable()


class Rule(_Model):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    when: RuleWhen = RuleWhen()
    action: Literal["send", "draft", "escalate", "ignore"]


class BusinessHours(_Model):
    days: tuple[Day, ...] = DAYS[:5]
    start: str = "08:30"
    end: str = "17:30"
    holidays: tuple[date, ...] = ()      # closed all day, in the policy timezone

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"must be a time as \"HH:MM\" (24 hours), not {value!r}")
        return value

    @model_validator(mode="after")
    def _order(self) -> BusinessHours:
        if self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be before end ({self.end})")
        return self

    def open_at(self, local: datetime) -> bool:
        if local.date() in self.holidays or DAYS[local.weekday()] not in self.days:
            return False
        clock = local.time().replace(tzinfo=None)
        return time.fromisoformat(self.start) <= clock < time.fromisoformat(self.end)


class PolicySpec(_Model):
    timezone: str = "Europe/Amsterdam"
    business_hours: BusinessHours | None = None      # None: any time is business time
    auto_send_min_confidence: Annotated[float, Field(ge=0.0, le=1.0)] = 0.80
    fallback_macro: str | None = None
    rules: tuple[Rule, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r} (an IANA name such as Europe/Amsterdam)") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Policy:
    spec: PolicySpec
    doc: YamlDoc
    data: bytes

    @property
    def file(self) -> str:
        return self.doc.file

    @property
    def zone(self) -> ZoneInfo:
        return self.spec.zone

    def line(self, *path: str | int) -> int | None:
        return self.doc.line(path)


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    rule: str
    reason: str
    guards: tuple[str, ...] = ()     # every guard that fired, e.g. ("guard.abusive_tone",)


@dataclass(frozen=True, slots=True)
class _Guard:
    name: str
    text: str
    escalate: bool = False


# ------------------------------------------------------------------ reading


def read_policy(text: str, data: bytes, shown: str) -> tuple[Policy | None, list[Finding]]:
    spec, doc, findings = read_spec(text, shown, PolicySpec, "the policy must be a mapping with "
                                    "timezone, business_hours, rules, ...")
    if spec is None or doc is None:
        return None, findings
    seen: dict[str, int] = {}
    for index, rule in enumerate(spec.rules):
        for path, message in rule.when.vocabulary_problems():
            full = ("rules", index, "when", *path)
            findings.append(error(shown, doc.line(full), message, key_text(full)))
        if rule.id in seen:
            findings.append(error(shown, doc.line(("rules", index, "id")),
                                  f"rule id {rule.id!r} is also rules[{seen[rule.id]}]",
                                  f"rules[{index}].id"))
        seen.setdefault(rule.id, index)
    if any(f.severity == "error" for f in findings):
        return None, findings
    return Policy(spec, doc, data), findings


def lint_policy(policy: Policy, macro_ids: set[str] | None) -> list[Finding]:
    """Cross-checks against the macros: unknown macro ids, rules no mail can reach.

    ``macro_ids`` None: some macro file could not be read, so its id is unknown; reporting
    the policy's references to it as unknown would only add false errors."""
    out: list[Finding] = []
    spec, shown = policy.spec, policy.file
    if macro_ids is not None and spec.fallback_macro is not None and spec.fallback_macro not in macro_ids:
        known = ", ".join(sorted(macro_ids)) or "none"
        out.append(error(shown, policy.line("fallback_macro"),
                         f"fallback_macro {spec.fallback_macro!r} is not a macro id (macros: {known})",
                         "fallback_macro"))
    if spec.fallback_macro is None:
        out.append(warning(shown, None, "no fallback_macro: a mail that no macro matches gets an empty "
                                        "draft for an agent", "fallback_macro"))
    for index, rule in enumerate(spec.rules):
        line = policy.line("rules", index)
        for name in rule.when.macros or ():
            if macro_ids is not None and name not in macro_ids:
                out.append(error(shown, line, f"unknown macro {name!r}", f"rules[{index}].when.macros"))
        if not rule.when.satisfiable():
            out.append(warning(shown, line, f"rule {rule.id!r} can never match", f"rules[{index}]"))
            continue
        for earlier_index, earlier in enumerate(spec.rules[:index]):
            if earlier.when.covers(rule.when):
                out.append(warning(shown, line, f"rule {rule.id!r} is unreachable: rules[{earlier_index}] "
                                                f"{earlier.id!r} matches every mail it matches first",
                                   f"rules[{index}]"))
                break
    return out


# ------------------------------------------------------------------ deciding


def evaluate(policy: Policy, analysis: Analysis, macro: Macro | None, *, auto_allowed: bool,
             now: datetime) -> Outcome:
    """The action for one mail and the chain of rule and guards that gave it."""
    spec = policy.spec
    macro_id = macro.id if macro else None
    steps: list[str] = []
    reasons: list[str] = []
    action = Action.DRAFT
    for index, rule in enumerate(spec.rules):
        if rule.when.matches_mail(analysis, macro_id):
            action = Action(rule.action)
            steps.append(f"rules[{index}] {rule.id}")
            reasons.append(f"policy rule {rule.id!r} says {action.value}")
            break
    else:
        steps.append("policy.default")
        reasons.append("no policy rule matched: draft for an agent")

    person = _person_guards(analysis)
    automatic = _automatic_guards(policy, analysis, macro, auto_allowed=auto_allowed, now=now)
    fired = person + automatic if action is Action.SEND else person if action is Action.IGNORE else []
    if fired:
        escalating = [g for g in fired if g.escalate]
        action = Action.ESCALATE if escalating else Action.DRAFT
        steps.append((escalating or fired)[0].name)
        reasons.append("never automatic: " + "; ".join(g.text for g in fired))
    if macro is not None and macro.spec.do.action == "escalate" and action is not Action.ESCALATE:
        action = Action.ESCALATE
        steps.append("macro.escalate")
        reasons.append(f"macro {macro.id} hands the mail to a person")
    return Outcome(action, " -> ".join(steps), "; ".join(reasons), tuple(g.name for g in fired))


def _person_guards(analysis: Analysis) -> list[_Guard]:
    """Mails that must reach a person, whatever the rule says."""
    guards = []
    if analysis.tone == "threatening":
        guards.append(_Guard("guard.threatening_tone", "the tone is threatening", escalate=True))
    if "legal_threat" in analysis.signals:
        guards.append(_Guard("guard.legal_threat", "the customer threatens legal action", escalate=True))
    if analysis.tone == "abusive":
        guards.append(_Guard("guard.abusive_tone", "the tone is abusive"))
    if "public_threat" in analysis.signals:
        guards.append(_Guard("guard.public_threat", "the customer threatens to go public"))
    return guards


def _automatic_guards(policy: Policy, analysis: Analysis, macro: Macro | None, *, auto_allowed: bool,
                      now: datetime) -> list[_Guard]:
    """Reasons a reply may not go out without a person, even when it is fine to write."""
    spec = policy.spec
    guards = []
    if analysis.confidence < spec.auto_send_min_confidence:
        guards.append(_Guard("guard.low_confidence", f"category confidence {analysis.confidence:.2f} is "
                                                     f"under {spec.auto_send_min_confidence:.2f}"))
    offer = macro.spec.do.offer if macro is not None else None
    if offer is not None and offer.max_amount is not None:
        values = [(v, str(raw)) for raw in analysis.entities.get("amounts") or []
                  if (v := amount_value(str(raw))) is not None]
        if values:
            value, raw = max(values)
            if value > offer.max_amount:
                guards.append(_Guard("guard.offer_above_cap", f"the amount {raw} is above the {offer.kind} "
                                                              f"cap of {offer.max_amount:g}"))
    hours = spec.business_hours
    if hours is not None:
        local = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(spec.zone)
        if not hours.open_at(local):
            guards.append(_Guard("guard.business_hours", f"outside business hours "
                                                         f"({local:%a %Y-%m-%d %H:%M} {spec.timezone})"))
    if not auto_allowed:
        guards.append(_Guard("guard.sender_limit", "this sender reached the limit of automatic replies"))
    return guards
