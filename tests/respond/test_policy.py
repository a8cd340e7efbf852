"""The policy: first matching rule, and every "never automatic" guard (docs/macros.md).

Analyses are built directly, so each test is about exactly one guard.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailbot.models import Action, Analysis, Decision
from mailbot.respond.dryrun import dry_run_mailbox
from tests.respond.conftest import AMSTERDAM, MONDAY_10, MacroWorld, analysis, mail


def decide(world: MacroWorld, a: Analysis, *, auto_allowed: bool = True,
           now: datetime = MONDAY_10) -> Decision:
    m, cleaned = mail("Bedankt", "Wat een geweldige service, dank jullie wel voor de snelle hulp!")
    return world.responder().decide(m, cleaned, a, mailbox=dry_run_mailbox(), auto_allowed=auto_allowed,
                                    now=now)


def test_a_calm_clear_mail_is_sent_by_the_first_matching_rule(world: MacroWorld) -> None:
    d = decide(world, analysis("praise"))
    assert d.action is Action.SEND
    assert d.rule == "rules[1] praise"
    assert d.macro_id == "praise_thanks"


@pytest.mark.parametrize(("tone", "signals", "action", "guard"), [
    ("abusive", (), Action.DRAFT, "guard.abusive_tone"),
    ("threatening", (), Action.ESCALATE, "guard.threatening_tone"),
    ("neutral", ("legal_threat",), Action.ESCALATE, "guard.legal_threat"),
    ("neutral", ("public_threat",), Action.DRAFT, "guard.public_threat"),
    ("frustrated", ("legal_threat", "public_threat"), Action.ESCALATE, "guard.legal_threat"),
])
def test_tone_and_threats_are_never_sent(world: MacroWorld, tone: str, signals: tuple[str, ...],
                                         action: Action, guard: str) -> None:
    # praise_thanks matches (category praise) and rule "praise" says send; the guard overrides.
    d = decide(world, analysis("praise", tone=tone, signals=signals))
    assert d.macro_id == ("threat_escalate" if tone == "threatening" else "praise_thanks")
    if tone == "threatening":  # the threats rule comes first and already escalates
        assert d.action is Action.ESCALATE and d.rule.startswith("rules[0] threats")
        return
    assert d.action is action
    assert d.rule == f"rules[1] praise -> {guard}"
    assert "never automatic" in d.reason


def test_a_threatening_tone_escalates_even_where_a_rule_says_send(world: MacroWorld) -> None:
    policy = world.policy.read_text().replace(
        "  - id: threats\n    when: {tones: [threatening]}\n    action: escalate\n", "")
    world.policy.write_text(policy)
    (world.macros / "threat.yaml").unlink()
    d = decide(world, analysis("praise", tone="threatening"))
    assert d.action is Action.ESCALATE
    assert d.rule == "rules[0] praise -> guard.threatening_tone"


def test_low_confidence_is_drafted(world: MacroWorld) -> None:
    d = decide(world, analysis("praise", confidence=0.79))
    assert d.action is Action.DRAFT
    assert d.rule == "rules[1] praise -> guard.low_confidence"
    assert "0.79" in d.reason and "0.80" in d.reason
    assert decide(world, analysis("praise", confidence=0.80)).action is Action.SEND


@pytest.mark.parametrize(("amounts", "action"), [
    (["€ 150,01"], Action.DRAFT),
    (["12,50 euro", "1.299,00 euro"], Action.DRAFT),   # the largest amount counts
    (["€ 150"], Action.SEND),                          # at the cap is within it
    (["89,95 euro"], Action.SEND),
    ([], Action.SEND),                                  # unknown amount: within the cap
    (["a lot"], Action.SEND),
])
def test_an_offer_above_its_cap_is_never_sent(world: MacroWorld, amounts: list[str], action: Action) -> None:
    d = decide(world, analysis("refund", amounts=amounts))
    assert d.macro_id == "refund"
    assert d.action is action
    if action is Action.DRAFT:
        assert d.rule == "rules[2] refunds -> guard.offer_above_cap"
        assert "cap of 150" in d.reason


@pytest.mark.parametrize(("when", "sent"), [
    (datetime(2026, 11, 23, 8, 29, tzinfo=AMSTERDAM), False),   # Monday, before opening
    (datetime(2026, 11, 23, 8, 30, tzinfo=AMSTERDAM), True),
    (datetime(2026, 11, 23, 17, 29, tzinfo=AMSTERDAM), True),
    (datetime(2026, 11, 23, 17, 30, tzinfo=AMSTERDAM), False),  # closing time is closed
    (datetime(2026, 11, 28, 11, 0, tzinfo=AMSTERDAM), False),   # Saturday
    (datetime(2026, 12, 25, 11, 0, tzinfo=AMSTERDAM), False),   # a holiday (a Friday)
    (datetime(2026, 11, 23, 16, 0, tzinfo=UTC), True),          # 17:00 in Amsterdam
    (datetime(2026, 11, 23, 17, 0, tzinfo=UTC), False),         # 18:00 in Amsterdam
    (datetime(2026, 7, 6, 15, 0, tzinfo=UTC), True),            # summer time: 17:00 in Amsterdam
    (datetime(2026, 7, 6, 15, 45), False),                      # naive means UTC: 17:45 there
])
def test_outside_business_hours_is_drafted(world: MacroWorld, when: datetime, sent: bool) -> None:
    d = decide(world, analysis("praise"), now=when)
    assert d.action is (Action.SEND if sent else Action.DRAFT)
    if not sent:
        assert d.rule == "rules[1] praise -> guard.business_hours"
        assert "outside business hours" in d.reason


def test_the_per_sender_limit_stops_automatic_replies(world: MacroWorld) -> None:
    d = decide(world, analysis("praise"), auto_allowed=False)
    assert d.action is Action.DRAFT
    assert d.rule == "rules[1] praise -> guard.sender_limit"
    assert d.draft is not None and d.draft.body  # the agent still gets the text


def test_every_guard_that_fired_is_in_the_reason(world: MacroWorld) -> None:
    saturday = datetime(2026, 11, 28, 11, 0, tzinfo=AMSTERDAM)
    d = decide(world, analysis("praise", tone="abusive", confidence=0.5), auto_allowed=False, now=saturday)
    assert d.action is Action.DRAFT
    assert d.rule == "rules[1] praise -> guard.abusive_tone"
    for text in ("abusive", "confidence 0.50", "outside business hours", "limit of automatic replies"):
        assert text in d.reason


def test_ignore_is_kept_for_calm_mail_but_threats_and_abuse_reach_a_person(world: MacroWorld) -> None:
    calm = decide(world, analysis("other"))
    assert calm.action is Action.IGNORE and calm.rule == "rules[4] other-ignored"
    assert calm.draft is None
    abusive = decide(world, analysis("other", tone="abusive"))
    assert abusive.action is Action.DRAFT
    assert abusive.rule == "rules[4] other-ignored -> guard.abusive_tone"
    legal = decide(world, analysis("other", signals=("legal_threat",)))
    assert legal.action is Action.ESCALATE
    assert legal.rule == "rules[4] other-ignored -> guard.legal_threat"


def test_no_matching_macro_uses_the_fallback(world: MacroWorld) -> None:
    d = decide(world, analysis("billing"))
    assert d.action is Action.DRAFT and d.rule == "rules[5] default"
    assert d.macro_id == "ask_what_they_want"
    assert "fallback" in d.reason


def test_a_macro_that_escalates_escalates_whatever_the_rule_says(world: MacroWorld) -> None:
    policy = world.policy.read_text().replace(
        "  - id: threats\n    when: {tones: [threatening]}\n    action: escalate\n", "")
    world.policy.write_text(policy)
    d = decide(world, analysis("billing", tone="threatening"))
    assert d.macro_id == "threat_escalate"
    assert d.action is Action.ESCALATE
    assert d.rule == "rules[4] default -> macro.escalate"
    assert d.draft is None            # an escalate-only macro: the person writes the reply
    assert d.tags == ("threat",)


def test_no_rule_matching_means_draft(world: MacroWorld) -> None:
    world.policy.write_text(world.policy.read_text().replace("  - id: default\n    action: draft\n", ""))
    d = decide(world, analysis("billing"))
    assert d.action is Action.DRAFT
    assert d.rule == "policy.default"


def test_without_business_hours_any_time_is_business_time(world: MacroWorld) -> None:
    text = world.policy.read_text()
    start = text.index("business_hours:")
    end = text.index("auto_send_min_confidence")
    world.policy.write_text(text[:start] + text[end:])
    sunday_night = datetime(2026, 11, 29, 3, 0, tzinfo=AMSTERDAM)
    assert decide(world, analysis("praise"), now=sunday_night).action is Action.SEND
