"""Rendering: customer text stays data, failures never reach a customer, and every decision
records what produced it."""

from __future__ import annotations

import hashlib
import re

import pytest

from mailbot.errors import MacroError, MailbotError, RenderError, UnknownMacroError
from mailbot.models import Action
from mailbot.respond.dryrun import dry_run_mailbox
from tests.respond.conftest import MONDAY_10, MacroWorld, analysis, mail

INJECTIONS = [
    "{{ 7*7 }}",
    "{% for x in range(3) %}loop{% endfor %}",
    "{{ company.__class__.__mro__ }}",
    "{% include 'signoff.nl' %}",
    "{# comment #}",
    "{{ cycler.__init__.__globals__ }}",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_template_syntax_in_subject_body_and_name_appears_literally(world: MacroWorld, payload: str) -> None:
    body = f"Geweldige service {payload} echt top gedaan, dank jullie wel voor alles."
    m, cleaned = mail(f"Top {payload}", body, sender=f"Jan {payload} <jan@example.nl>")
    a = analysis("praise", customer_name=f"Jan {payload}")
    d = world.responder().decide(m, cleaned, a, mailbox=dry_run_mailbox(), auto_allowed=True, now=MONDAY_10)
    assert d.action is Action.SEND and d.draft is not None
    body_out = d.draft.body
    assert f"Beste Jan {payload}," in body_out            # the name, literally
    assert f"Onderwerp: Top {payload}" in body_out        # the subject, literally
    assert payload in d.draft.variables["customer_words"]  # their own words, literally
    assert f'"{d.draft.variables["customer_words"]}"' in body_out
    assert d.draft.subject == f"Re: Top {payload}"
    assert "49" not in body_out and "loop" not in body_out.replace(payload, "")


def test_header_injection_in_the_subject_stays_one_line(world: MacroWorld) -> None:
    m, cleaned = mail("Top", "Geweldige service, echt top gedaan, dank jullie wel!")
    m = type(m)(**{**{f: getattr(m, f) for f in m.__slots__}, "subject": "Top\r\nBcc: victim@example.com"})
    d = world.responder().decide(m, cleaned, analysis("praise"), mailbox=dry_run_mailbox(), auto_allowed=True,
                                 now=MONDAY_10)
    assert d.draft is not None and "\n" not in d.draft.subject and "\r" not in d.draft.subject


def _bad_world(world: MacroWorld, body_nl: str) -> MacroWorld:
    world.edit("praise.yaml", (world.macros / "praise.yaml").read_text().replace(
        "      Dank u wel!\n", f"      Dank u wel!\n      {body_nl}\n"))
    return world


def test_a_sandbox_violation_becomes_a_draft_that_names_file_and_line(world: MacroWorld) -> None:
    _bad_world(world, "{{ subject.__class__.__mro__ }}")
    m, cleaned = mail("Top", "Geweldige service, echt top gedaan, dank jullie wel!")
    d = world.responder().decide(m, cleaned, analysis("praise"), mailbox=dry_run_mailbox(), auto_allowed=True,
                                 now=MONDAY_10)
    assert d.action is Action.DRAFT                      # the rule said send
    assert d.rule == "rules[1] praise -> guard.render_error"
    lines = (world.macros / "praise.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "__mro__" in text)
    assert f"praise.yaml:{line}:" in d.reason
    assert "sandbox" in d.reason and "__class__" in d.reason
    assert d.draft is not None and d.draft.body == ""    # nothing half-rendered for a customer
    assert d.draft.subject == "Re: Top"


def test_an_undefined_variable_becomes_a_draft_naming_file_and_variable(world: MacroWorld) -> None:
    # A computed include cannot be checked by lint, so the failure surfaces at render time.
    world.edit("snippets/closing.nl.j2", "Met groet,\n{{ order }}\n")
    world.edit("snippets/closing.en.j2", "Regards,\n{{ order }}\n")
    _bad_world(world, '{% include "closing." ~ language %}')
    responder = world.responder()
    assert responder.status().errors == ()
    m, cleaned = mail("Top", "Geweldige service, echt top gedaan, dank jullie wel!")
    d = responder.decide(m, cleaned, analysis("praise"), mailbox=dry_run_mailbox(), auto_allowed=True,
                         now=MONDAY_10)
    assert d.action is Action.DRAFT and d.rule.endswith("-> guard.render_error")
    assert "closing.nl.j2:2:" in d.reason and "'order' is undefined" in d.reason
    assert "macro praise_thanks" in d.reason
    with pytest.raises(RenderError) as info:
        responder.render("praise_thanks", m, cleaned, analysis("praise"))
    assert info.value.variable == "order"
    assert info.value.file is not None and info.value.file.endswith("closing.nl.j2")
    assert info.value.line == 2
    # With an order number the same macro renders fine.
    ok = responder.render("praise_thanks", m, cleaned, analysis("praise", orders=["12345678"]))
    assert "12345678" in ok.body


def test_the_decision_records_macro_hash_variables_and_rule(world: MacroWorld) -> None:
    m, cleaned = mail("Koffiezetapparaat", "Mijn koffiezetapparaat is kapot, ik wil mijn geld terug.")
    a = analysis("refund", orders=["12345678"], amounts=["89,95 euro"], products=["koffiezetapparaat"],
                 customer_name="Anneke de Vries")
    d = world.responder().decide(m, cleaned, a, mailbox=dry_run_mailbox(), auto_allowed=True, now=MONDAY_10)
    assert d.macro_id == "refund" and d.rule == "rules[2] refunds" and d.tags == ("refund",)
    assert d.macro_hash is not None and re.fullmatch(r"[0-9a-f]{12}", d.macro_hash)
    snippets = world.macros / "snippets"
    expected = hashlib.sha256((world.macros / "refund.yaml").read_bytes())
    for name in ("greeting.en", "greeting.nl", "signoff.en", "signoff.nl"):  # sorted
        expected.update(b"\0snippet\0" + name.encode() + b"\0" + (snippets / f"{name}.j2").read_bytes())
    assert d.macro_hash == expected.hexdigest()[:12]
    assert d.draft is not None
    variables = d.draft.variables
    assert variables["order"] == "12345678" and variables["amount"] == "89,95 euro"
    assert variables["salutation"] == "Beste Anneke de Vries,"
    assert variables["problem"] == ("Ik begrijp dat u het bedrag van 89,95 euro voor uw koffiezetapparaat "
                                    "uit bestelling 12345678 terug wilt ontvangen.")
    assert "customer_words" not in variables     # the macro does not use it
    assert d.draft.body.startswith("Beste Anneke de Vries,\n\nIk begrijp dat")
    assert d.draft.body.endswith("Met vriendelijke groet,\n\nSanne de Vries\nExample Shop")
    assert "\n\n\n" not in d.draft.body


def test_the_hash_changes_with_the_macro_or_a_snippet_it_uses_only(world: MacroWorld) -> None:
    before = {mid: world.responder().macro_hash(mid) for mid in ("refund", "praise_thanks")}
    world.edit("snippets/signoff.nl.j2", "Hartelijke groet,\n\n{{ agent }}\n")
    after = {mid: world.responder().macro_hash(mid) for mid in ("refund", "praise_thanks")}
    assert before["refund"] != after["refund"] and before["praise_thanks"] != after["praise_thanks"]
    world.edit("refund.yaml", (world.macros / "refund.yaml").read_text() + "# a comment\n")
    again = {mid: world.responder().macro_hash(mid) for mid in ("refund", "praise_thanks")}
    assert again["refund"] != after["refund"] and again["praise_thanks"] == after["praise_thanks"]


def test_english_mail_gets_the_english_variant(world: MacroWorld) -> None:
    m, cleaned = mail("Refund", "I want my money back for order 555.", sender="jan@example.com")
    d = world.responder().decide(m, cleaned, analysis("refund", language="en", orders=["555"]),
                                 mailbox=dry_run_mailbox(), auto_allowed=True, now=MONDAY_10)
    assert d.draft is not None
    assert d.draft.body.startswith("Dear customer,\n\nI understand that you would like your money back "
                                   "for your order 555.")
    assert "Kind regards" in d.draft.body


def test_the_web_app_api(world: MacroWorld) -> None:
    responder = world.responder()
    assert responder.macros() == [
        ("ask_what_they_want", "The ask_what_they_want macro."),
        ("defect_replace", "The defect_replace macro."),
        ("praise_thanks", "The praise_thanks macro."), ("refund", "The refund macro."),
        ("threat_escalate", "Threats go to a person."),
    ]
    m, cleaned = mail()
    draft = responder.render("refund", m, cleaned, analysis("question"), agent="Piet", language="en")
    assert draft.body.startswith("Dear customer,")   # the analysis found no name
    assert "Piet" in draft.body and "Sanne" not in draft.body
    with pytest.raises(UnknownMacroError) as info:
        responder.render("nope", m, cleaned, analysis())
    assert isinstance(info.value, MailbotError) and isinstance(info.value, LookupError)
    with pytest.raises(RenderError, match="no nl variant"):
        responder.render("threat_escalate", m, cleaned, analysis(), language="nl")
    status = responder.status()
    assert status.ok and status.macro_count == 5 and status.loaded_at is not None
    assert status.to_dict()["errors"] == []


def test_without_a_valid_set_every_mail_goes_to_an_agent(world: MacroWorld) -> None:
    world.edit("refund.yaml", "id: [broken\n")
    responder = world.responder()
    m, cleaned = mail()
    d = responder.decide(m, cleaned, analysis(), mailbox=dry_run_mailbox(), auto_allowed=True, now=MONDAY_10)
    assert d.action is Action.DRAFT and d.rule == "no_macro_set"
    assert "refund.yaml:2: YAML syntax error" in d.reason and "starts on line 1" in d.reason
    assert responder.macros() == []
    assert not responder.status().ok
    with pytest.raises(MacroError, match="no valid macro set"):
        responder.render("refund", m, cleaned, analysis())
