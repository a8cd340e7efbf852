"""`mailbot respond`, `mailbot macros test` and `mailbot macros preview`, through mailbot.cli.main."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from mailbot.cli import build_parser, main
from mailbot.respond.dryrun import mail_bytes
from tests.respond.conftest import MacroWorld

ROOT = Path(__file__).resolve().parents[2]
CLASSIFY_KEYS = {"language", "category", "category_scores", "tone", "tone_scores", "signals", "entities",
                 "explanation"}


def run(world: MacroWorld, *argv: str, stdin: str | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out = io.StringIO()
    command, *rest = argv
    if command == "macros":
        command, *rest = [f"macros {rest[0]}", *rest[1:]]
    code = main([*command.split(), *rest, "--macros", str(world.macros), "--policy", str(world.policy)],
                out=out)
    return code, out.getvalue()


@pytest.mark.parametrize("argv", [
    ["macros", "--help"], ["macros", "lint", "--help"], ["macros", "test", "--help"],
    ["macros", "preview", "--help"], ["respond", "--help"],
])
def test_every_command_has_help(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 0


def test_respond_reads_eml_files_and_prints_one_line_per_mail(world: MacroWorld, tmp_path: Path) -> None:
    paths = [ROOT / "examples" / "mail" / name for name in
             ("02-en-defect.eml", "04-en-out-of-office.eml", "10-en-praise.eml")]
    missing = tmp_path / "missing.eml"
    code, out = run(world, "respond", "--at", "2026-11-23T10:00", *map(str, paths), str(missing))
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and len(lines) == 4                           # one per input, in order
    defect, away, praise, error = lines
    for record in (defect, away, praise):
        assert CLASSIFY_KEYS | {"macro", "action", "rule", "reason", "draft"} == set(record)
        assert record["action"] in ("send", "draft", "escalate", "ignore")
    assert defect["macro"] == "defect_replace" or defect["category"] != "defect"
    assert defect["draft"]["subject"].startswith("Re: ") and defect["draft"]["body"]
    assert away["action"] == "ignore" and away["rule"] == "screen.auto_submitted" and away["draft"] is None
    assert praise["macro"] == "praise_thanks" and praise["rule"].startswith("rules[1] praise")
    assert "cannot read" in error["error"]


def test_respond_reads_json_lines_like_classify(world: MacroWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        {"subject": "Geld terug {{ 7*7 }}", "from": "Jan {% if 1 %}X{% endif %} <jan@example.nl>",
         "body": "Hallo,\n\nIk wil mijn geld terug voor bestelling 998877, het bedrag van € 240,00. "
                 "Het product voldoet niet.\n\nGroet,\nJan"},
        {"subject": "Bedankt", "body": "Wat een geweldige service, dank jullie wel voor de snelle hulp!"},
        {"subject": 12},
        "not json",
    ]
    stdin = "\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines) + "\n\n"
    code, out = run(world, "respond", "--at", "2026-11-28T10:00", stdin=stdin, monkeypatch=monkeypatch)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and len(records) == 4
    refund, thanks, bad_field, bad_json = records
    assert refund["macro"] == "refund" or refund["category"] != "refund"
    if refund["macro"] == "refund":
        # € 240 is above the refund cap of 150, and Saturday is outside business hours.
        assert refund["action"] == "draft" and "guard." in refund["rule"]
        assert "cap of 150" in refund["reason"] and "outside business hours" in refund["reason"]
        assert "998877" in refund["draft"]["body"]
    assert refund["draft"]["subject"] == "Re: Geld terug {{ 7*7 }}"
    assert thanks["macro"] == "praise_thanks" and thanks["action"] == "draft"     # Saturday
    assert thanks["rule"] == "rules[1] praise -> guard.business_hours"
    assert "Beste klant," in thanks["draft"]["body"]                               # no name known
    assert "<stdin>:3" in bad_field["error"] and "subject" in bad_field["error"]
    assert "<stdin>:4" in bad_json["error"]


def test_respond_with_broken_macros_exits_2(world: MacroWorld, capsys: pytest.CaptureFixture[str]) -> None:
    world.edit("refund.yaml", "id: refund\n")
    code, out = run(world, "respond", str(ROOT / "examples" / "mail" / "10-en-praise.eml"))
    assert code == 2 and out == ""
    assert "refund.yaml:1: description: required key is missing" in capsys.readouterr().err


GOLDEN = """\
- name: thanks for praise, Dutch
  mail:
    from: "Jan de Boer <jan@example.nl>"
    subject: "Bedankt!"
    body: "Wat een geweldige service, mijn pakket was er binnen een dag. Dank jullie wel!"
  analysis: {category: praise, tone: neutral}
  expect:
    macro: praise_thanks
    action: send
    rule: "rules[1] praise"
    contains: ["Beste Jan de Boer,", "Dank u wel!"]
    not_contains: ["{{"]
- name: praise on a Saturday is drafted
  mail: {subject: "Bedankt!", body: "Wat een geweldige service, dank jullie wel!"}
  at: "2026-11-28T10:00:00+01:00"
  analysis: {category: praise, tone: neutral}
  expect: {macro: praise_thanks, action: draft, rule: "rules[1] praise -> guard.business_hours"}
- name: a refund above the cap, from a file
  eml: refund.eml
  analysis: {category: refund, tone: neutral, entities: {amounts: ["€ 300"]}}
  expect: {macro: refund, action: draft, rule: "rules[2] refunds -> guard.offer_above_cap"}
- name: over the sender limit
  mail: {subject: "Bedankt!", body: "Wat een geweldige service, dank jullie wel!"}
  analysis: {category: praise, tone: neutral}
  auto_allowed: false
  expect: {macro: praise_thanks, action: draft, rule: "rules[1] praise -> guard.sender_limit"}
"""


def test_macros_test_runs_golden_cases(world: MacroWorld) -> None:
    tests = world.macros / "tests"
    tests.mkdir()
    (tests / "cases.yaml").write_text(GOLDEN, encoding="utf-8")
    (tests / "refund.eml").write_bytes(mail_bytes("Geld terug", "Ik wil mijn geld terug voor bestelling 123.",
                                                  "Piet <piet@example.nl>"))
    code, out = run(world, "macros", "test")
    assert code == 0, out
    assert out.count("PASS ") == 4 and out.endswith("4 passed, 0 failed\n")
    assert f"PASS {tests / 'cases.yaml'}:1 thanks for praise, Dutch" in out
    # A wrong expectation fails with the difference, and exit 1.
    (tests / "cases.yaml").write_text(GOLDEN.replace("action: send", "action: escalate"), encoding="utf-8")
    code, out = run(world, "macros", "test")
    assert code == 1
    assert "FAIL" in out and "action: expected escalate, got send" in out and "3 passed, 1 failed" in out


def test_macros_test_reports_bad_case_files_with_line(world: MacroWorld, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: x\n  mail: {subject: a}\n  expect: {macro: refund}\n", encoding="utf-8")
    code, _ = run(world, "macros", "test", str(bad))
    assert code == 2
    assert f"{bad}:3: field 'expect.action'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = run(world, "macros", "test", str(empty))
    assert code == 1 and "no golden cases" in out


def test_preview_renders_one_macro_for_a_mail(world: MacroWorld, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    eml = tmp_path / "mail.eml"
    eml.write_bytes(mail_bytes("Kapot", "Mijn stoel uit bestelling 445566 is kapot.\n\nGroet,\n"
                                        "Marieke Jansen", "Marieke Jansen <m@example.nl>"))
    code, out = run(world, "macros", "preview", "refund", "--mail", str(eml), "--language", "en")
    assert code == 0, out
    assert out.startswith(f"macro refund ({world.macros / 'refund.yaml'}, version ")
    assert "Subject: Re: Kapot" in out and "Dear Marieke Jansen," in out and "Order: 445566." in out
    assert 'order: "445566"' in out and "variables used:" in out
    code, _ = run(world, "macros", "preview", "nope", "--mail", str(eml))
    assert code == 3 and "no macro with id 'nope'" in capsys.readouterr().err
    code, out = run(world, "macros", "preview", "threat_escalate", "--mail", str(eml), "--language", "nl")
    assert code == 1 and "RENDER ERROR" in out and "no nl variant" in out


def test_the_real_golden_cases_pass() -> None:
    """The seed macros in macros/ against their golden mails in macros/tests/ (CI runs this)."""
    cases = sorted((ROOT / "macros" / "tests").glob("*.y*ml")) if (ROOT / "macros" / "tests").is_dir() else []
    assert cases, "macros/tests/ has no golden cases yet: the seed macros must come with them"
    out = io.StringIO()
    code = main(["macros", "test", "--macros", str(ROOT / "macros"), "--policy",
                 str(ROOT / "config" / "policy.yaml")], out=out)
    assert code == 0, out.getvalue()
    assert " 0 failed" in out.getvalue()


def test_the_real_macros_lint_clean() -> None:
    out = io.StringIO()
    code = main(["macros", "lint", "--macros", str(ROOT / "macros"), "--policy",
                 str(ROOT / "config" / "policy.yaml")], out=out)
    assert code == 0, out.getvalue()


def test_the_real_macro_set_survives_a_copy_and_hot_reload(tmp_path: Path) -> None:
    """A broken edit of a real seed macro keeps the seed set in use."""
    from mailbot.respond import Responder

    shutil.copytree(ROOT / "macros", tmp_path / "macros", ignore=shutil.ignore_patterns("tests"))
    shutil.copy(ROOT / "config" / "policy.yaml", tmp_path / "policy.yaml")
    responder = Responder(tmp_path / "macros", tmp_path / "policy.yaml", company={"name": "Shop"})
    count = len(responder.macros())
    assert count >= 15 and responder.status().ok
    first = sorted((tmp_path / "macros").glob("*.yaml"))[0]
    first.write_text(first.read_text(encoding="utf-8") + "\nwhen: {categories: [nonsense]}\n",
                     encoding="utf-8")
    responder.check_reload()
    assert len(responder.macros()) == count and not responder.status().ok
