"""`mailbot macros lint`: every kind of problem, each with file and line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.respond.lint import LintResult, load_set
from tests.respond.conftest import MACROS, POLICY, MacroWorld

GOOD_BODY = """templates:
  nl:
    subject: "{{ reply_subject }}"
    body: |
      {{ salutation }}
      %s
  en:
    subject: "{{ reply_subject }}"
    body: |
      {{ salutation }}
      Thanks.
"""


def lint(world: MacroWorld) -> LintResult:
    return load_set(world.macros, world.policy)


def messages(result: LintResult, severity: str = "error") -> list[str]:
    return [str(f) for f in result.findings if f.severity == severity]


def one(result: LintResult, text: str, severity: str = "error") -> str:
    found = [m for m in messages(result, severity) if text in m]
    assert len(found) == 1, f"expected one {severity} with {text!r}, got: {messages(result, severity)}"
    return found[0]


def macro(mid: str, when: str = "{categories: [billing]}", nl_line: str = "Dank.", *, priority: int = 5,
          extra: str = "") -> str:
    return (f"id: {mid}\ndescription: {mid}\npriority: {priority}\nwhen: {when}\n{extra}"
            + GOOD_BODY % nl_line)


def test_the_test_set_is_clean(world: MacroWorld) -> None:
    result = lint(world)
    assert result.findings == () and result.macro_set is not None


def test_yaml_syntax_error_names_file_and_line(world: MacroWorld) -> None:
    world.edit("billing.yaml", "id: billing\ndescription: x\nwhen: {categories: [billing}\n")
    result = lint(world)
    assert result.macro_set is None
    assert one(result, "billing.yaml").endswith(
        "billing.yaml:3: YAML syntax error: column 28: expected ',' or ']', but got '}'")


@pytest.mark.parametrize(("text", "expected"), [
    (macro("billing", extra="priorty: 5\n"), "billing.yaml:5: priorty: unknown key"),
    (macro("billing").replace("priority: 5", "priority: high"), "billing.yaml:3: priority: Input should be a "
                                                                "valid integer"),
    (macro("billing").replace("description: billing\n", ""), "billing.yaml:1: description: required key"),
    (macro("Billing!"), "billing.yaml:1: id: String should match pattern"),
    (macro("billing", extra="do: {action: send}\n"), "billing.yaml:5: do.action: Input should be 'reply' or "
                                                     "'escalate'"),
    (macro("billing", "{categories: [billing], min_confidence: 2}"), "billing.yaml:4: when.min_confidence"),
    (macro("billing").replace("priority: 5\n", "priority: 5\npriority: 6\n"),
     "billing.yaml:4: priority: key given twice"),
    ("- just a list\n", "billing.yaml:1: a macro file must be a mapping"),
])
def test_schema_errors_name_file_line_and_key(world: MacroWorld, text: str, expected: str) -> None:
    world.edit("billing.yaml", text)
    result = lint(world)
    assert result.macro_set is None
    one(result, expected)


@pytest.mark.parametrize(("when", "expected"), [
    ("{categories: [billing, refnud]}", "billing.yaml:4: when.categories[1]: unknown category 'refnud'"),
    ("{tones: [angry]}", "when.tones[0]: unknown tone 'angry'"),
    ("{not_signals: [lawyer]}", "when.not_signals[0]: unknown signal 'lawyer'"),
    ("{languages: [de]}", "when.languages[0]: unknown language 'de'"),
    ("{entities: [order]}", "when.entities[0]: unknown entity kind 'order'"),
])
def test_unknown_vocabulary_in_a_macro(world: MacroWorld, when: str, expected: str) -> None:
    world.edit("billing.yaml", macro("billing", when))
    one(lint(world), expected)


def test_unknown_vocabulary_and_macros_in_the_policy(world: MacroWorld) -> None:
    world.policy.write_text(POLICY.replace("when: {macros: [praise_thanks]}",
                                           "when: {macros: [praise_thank], tones: [happy]}"))
    result = lint(world)
    lines = world.policy.read_text().splitlines()
    at = next(i for i, line in enumerate(lines, 1) if "praise_thank]" in line)
    one(result, f"policy.yaml:{at}: rules[1].when.tones[0]: unknown tone 'happy'")
    assert result.macro_set is None


def test_policy_references_to_macros_are_checked(world: MacroWorld) -> None:
    world.policy.write_text(POLICY.replace("fallback_macro: ask_what_they_want", "fallback_macro: ask")
                            .replace("macros: [refund]", "macros: [refunds]"))
    result = lint(world)
    one(result, "policy.yaml:8: fallback_macro: fallback_macro 'ask' is not a macro id")
    one(result, "rules[2].when.macros: unknown macro 'refunds'")


@pytest.mark.parametrize(("replace", "expected"), [
    ('timezone: Europe/Amsterdam', 'timezone: Europe/Amsterdm'),
    ('start: "08:30"', 'start: "8.30"'),
    ('end: "17:30"', 'end: "07:30"'),
    ('action: ignore', 'action: reply'),
])
def test_policy_schema_errors(world: MacroWorld, replace: str, expected: str) -> None:
    world.policy.write_text(POLICY.replace(replace, expected))
    result = lint(world)
    assert result.macro_set is None and result.errors
    assert all("policy.yaml:" in m for m in messages(result))


def test_a_template_that_does_not_compile_names_the_line(world: MacroWorld) -> None:
    world.edit("billing.yaml", macro("billing", nl_line="{% if order is defined %}Order {{ order }}"))
    result = lint(world)
    # id, description, priority, when, templates, nl, subject, body, salutation, -> line 10
    assert one(result, "does not compile").startswith(
        f"{world.macros / 'billing.yaml'}:10: templates.nl.body: template does not compile: Unexpected end "
        "of template")


def test_a_snippet_that_does_not_compile(world: MacroWorld) -> None:
    world.edit("snippets/signoff.en.j2", "Kind regards,\n\n{{ agent }\n")
    one(lint(world), "signoff.en.j2:3: template does not compile")


@pytest.mark.parametrize(("line", "problem"), [
    ("{{ ordr }}", "unknown variable 'ordr'"),
    ("{{ order }}", "'order' may be undefined for some mails"),
    ("{{ customer_name }}", "'customer_name' may be undefined"),
    ("{{ offer.kind }}", "'offer' may be undefined"),
    ("{% if order %}{{ order }}{% endif %}", "'order' may be undefined"),
    ("{{ order if product is defined else 'x' }}", "'order' may be undefined"),
    ("{% if order is defined or product is defined %}{{ order }}{% endif %}", "'order' may be undefined"),
    ('{% include "footer.nl" %}', "no snippet named 'footer.nl'"),
])
def test_variables_that_may_be_undefined_or_do_not_exist(world: MacroWorld, line: str, problem: str) -> None:
    world.edit("billing.yaml", macro("billing", nl_line=line))
    result = lint(world)
    assert one(result, problem).startswith(f"{world.macros / 'billing.yaml'}:10: templates.nl.body:")
    assert result.macro_set is None


@pytest.mark.parametrize(("line", "when", "extra"), [
    ("{% if order is defined %}{{ order }}{% endif %}", "{categories: [billing]}", ""),
    ("{% if order is not defined %}geen{% else %}{{ order }}{% endif %}", "{categories: [billing]}", ""),
    ("{% if order is undefined %}geen{% elif product is defined %}{{ product }} {{ order }}{% endif %}",
     "{categories: [billing]}", ""),
    ("{{ order if order is defined else 'uw bestelling' }}", "{categories: [billing]}", ""),
    ("{% if order is defined and order|length > 3 %}{{ order }}{% endif %}", "{categories: [billing]}", ""),
    ("{{ customer_name | default('klant') }}", "{categories: [billing]}", ""),
    ("{{ order }} {{ amount }}", "{categories: [billing], entities: [orders, amounts]}", ""),
    ("{{ offer.kind }}", "{categories: [billing]}", "do: {offer: {kind: voucher}}\n"),
    ("{% for o in orders %}{{ o }}{% endfor %}{% set x = 1 %}{{ x }}", "{categories: [billing]}", ""),
])
def test_guarded_and_guaranteed_variables_are_fine(world: MacroWorld, line: str, when: str,
                                                   extra: str) -> None:
    world.edit("billing.yaml", macro("billing", when, line, extra=extra))
    result = lint(world)
    assert messages(result) == []


def test_snippets_are_checked_with_the_guards_of_their_include(world: MacroWorld) -> None:
    world.edit("snippets/order.nl.j2", "Bestelling {{ order }}.\n")
    world.edit("billing.yaml", macro("billing", nl_line='{% if order is defined %}{% include "order.nl" %}'
                                                        '{% endif %}'))
    assert messages(lint(world)) == []
    world.edit("billing.yaml", macro("billing", nl_line='{% include "order.nl" %}'))
    result = lint(world)
    one(result, "order.nl.j2:1: 'order' may be undefined for some mails")
    assert "included by macro billing" in one(result, "order.nl.j2")


def test_a_missing_language_variant(world: MacroWorld) -> None:
    text = macro("billing")
    world.edit("billing.yaml", text[: text.index("  en:")])
    one(lint(world), "billing.yaml:5: templates: missing en variant")
    # A macro only for Dutch mail needs only the Dutch variant ...
    world.edit("billing.yaml", text[: text.index("  en:")].replace("{categories: [billing]}",
                                                                  "{categories: [billing], languages: [nl]}"))
    assert messages(lint(world)) == []
    # ... but the fallback is used for any mail, so it needs both.
    world.edit("ask.yaml", MACROS["ask.yaml"][: MACROS["ask.yaml"].index("  en:")])
    one(lint(world), "ask.yaml:7: templates: missing en variant")


def test_two_macros_that_always_tie_are_an_error_naming_both(world: MacroWorld) -> None:
    world.edit("billing_a.yaml", macro("billing_a", "{categories: [billing], tones: [neutral]}"))
    world.edit("billing_b.yaml", macro("billing_b", "{tones: [neutral], categories: [billing]}"))
    result = lint(world)
    found = one(result, "always ties")
    assert found.startswith(f"{world.macros / 'billing_b.yaml'}:4: when:")
    assert f"'billing_a' ({world.macros / 'billing_a.yaml'}:4)" in found
    assert result.macro_set is None


def test_unreachable_and_possibly_tying_macros_are_warnings(world: MacroWorld) -> None:
    world.edit("billing_broad.yaml", macro("billing_broad", "{categories: [billing, cancellation]}",
                                           priority=9))
    world.edit("billing_narrow.yaml", macro("billing_narrow", "{categories: [billing], tones: [neutral]}"))
    world.edit("billing_mid.yaml", macro("billing_mid", "{categories: [cancellation], tones: [neutral]}",
                                         priority=9))
    world.edit("billing_other.yaml", macro("billing_other", "{categories: [cancellation, billing], "
                                                            "tones: [frustrated]}", priority=9))
    result = lint(world)
    assert result.macro_set is not None          # warnings do not block the set
    one(result, "billing_narrow.yaml:4: when: unreachable: macro 'billing_broad'", "warning")
    one(result, "billing_mid.yaml:4: when: unreachable", "warning")
    one(result, "billing_other.yaml:4: when: unreachable", "warning")
    world.edit("billing_other.yaml", macro("billing_other", "{categories: [billing, praise]}", priority=9))
    (world.macros / "billing_mid.yaml").unlink()
    one(lint(world), "billing_other.yaml:3: priority: may tie with macro 'billing_broad'", "warning")


def test_duplicate_ids(world: MacroWorld) -> None:
    world.edit("refund2.yaml", MACROS["refund.yaml"])
    first = world.macros / "refund.yaml"
    one(lint(world), f"refund2.yaml:1: id: macro id 'refund' is already used by {first}:1")


def test_a_macro_that_can_never_match_and_a_shadowed_rule(world: MacroWorld) -> None:
    world.edit("billing.yaml", macro("billing", "{categories: [billing], signals: [urgent], "
                                                "not_signals: [urgent]}"))
    world.policy.write_text(POLICY.replace("  - id: default\n", "  - id: all\n    action: draft\n"
                                                                "  - id: default\n"))
    result = lint(world)
    one(result, "billing.yaml:4: when: this macro can never match", "warning")
    one(result, "rules[6]: rule 'default' is unreachable: rules[5] 'all'", "warning")


def test_missing_folder_policy_and_empty_folder(tmp_path: Path) -> None:
    result = load_set(tmp_path / "nope", tmp_path / "policy.yaml")
    assert [str(f) for f in result.findings] == [f"{tmp_path / 'nope'}: the macros folder does not exist"]
    (tmp_path / "macros").mkdir()
    result = load_set(tmp_path / "macros", tmp_path / "policy.yaml")
    assert {str(f) for f in result.findings} == {
        f"{tmp_path / 'policy.yaml'}: file not found",
        f"{tmp_path / 'macros'}: no macro files (*.yaml) in the macros folder",
    }


# ------------------------------------------------------------------ the command


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_lint_command_exit_codes_and_output(world: MacroWorld) -> None:
    code, out = run("macros", "lint", "--macros", str(world.macros), "--policy", str(world.policy))
    assert code == 0 and out.startswith("OK: 0 error(s), 0 warning(s) in 5 macro(s)")
    world.edit("billing.yaml", macro("billing", nl_line="{{ ordr }}"))
    code, out = run("macros", "lint", "--macros", str(world.macros), "--policy", str(world.policy))
    assert code == 2
    assert f"error: {world.macros / 'billing.yaml'}:10: templates.nl.body: unknown variable 'ordr'" in out
    assert "1 error(s), 0 warning(s)" in out
    code, out = run("macros", "lint", "--json", "--macros", str(world.macros), "--policy", str(world.policy))
    data = json.loads(out)
    assert code == 2 and data["ok"] is False
    assert data["errors"][0]["line"] == 10 and data["errors"][0]["key"] == "templates.nl.body"


def test_an_explicit_config_that_does_not_exist_is_a_usage_error(world: MacroWorld, tmp_path: Path) -> None:
    code, _ = run("-c", str(tmp_path / "absent.yaml"), "macros", "lint", "--macros", str(world.macros),
                  "--policy", str(world.policy))
    assert code == 2


def test_lint_uses_the_configured_folders(world: MacroWorld, tmp_path: Path) -> None:
    config = world.root / "config" / "mailbot.yaml"
    config.write_text("mailboxes:\n  - name: support\n    address: support@shop.example\n"
                      "    source: {kind: maildir, path: inbox}\n"
                      "    transport: {kind: outbox, path: outbox}\n",
                      encoding="utf-8")  # respond.macros defaults to ../macros, policy to policy.yaml
    code, out = run("-c", str(config), "macros", "lint")
    assert code == 0 and str(world.macros) in out and str(world.policy) in out
