"""Training, loading, classifying and evaluating: the CLI contract and bad input."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.nlp.analyzer import Analyzer, MailText

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "mailbot" / "nlp" / "corpus"


@pytest.fixture(scope="session")
def shipped() -> Analyzer:
    return Analyzer.load()


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on an admin's own labels: two categories, some lines without a tone."""
    rows = [json.loads(line) for line in (CORPUS / "train.jsonl").read_text("utf-8").splitlines()]
    rng = random.Random(1)
    rng.shuffle(rows)
    picked = []
    for row in rows:
        if row["category"] in ("refund", "praise") and len(picked) < 240:
            row = dict(row, category="money_back" if row["category"] == "refund" else "thanks")
            if len(picked) % 3 == 0:
                row.pop("tone")
            picked.append(row)
    data = tmp_path_factory.mktemp("data") / "train.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in picked) + "\n", "utf-8")
    out = tmp_path_factory.mktemp("model")
    assert main(["train", "--data", str(data), "--output", str(out), "--set", "mailbot.max_epochs=3"]) == 0
    return out


def _classify(lines: list[str], *args: str) -> list[dict[str, object]]:
    done = subprocess.run([sys.executable, "-m", "mailbot", "classify", *args], input="\n".join(lines),
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_shipped_model_classifies_in_order_with_every_field() -> None:
    mails = [
        {"subject": "Geld terug", "body": "Ik heb de stoelen teruggestuurd maar mijn geld nog niet terug."},
        {"subject": "Thank you!", "body": "Great service, the new boots fit perfectly. Thanks Sanne!"},
        {"subject": "",
         "body": "Ik weet waar jullie wonen. Als mijn pakket morgen niet hier is kom ik langs."},
    ]
    out = _classify([json.dumps(m) for m in mails])
    assert len(out) == 3
    for row in out:
        for key in ("language", "category", "category_scores", "tone", "tone_scores", "signals",
                    "entities", "explanation"):
            assert key in row
    assert [r["language"] for r in out] == ["nl", "en", "nl"]
    assert out[0]["category"] == "refund"
    assert out[1]["category"] == "praise"
    assert out[2]["tone"] == "threatening"
    assert any("rule threat" in line for line in out[2]["explanation"])  # type: ignore[union-attr]


def test_classify_reads_eml_files() -> None:
    out = _classify([], str(ROOT / "examples" / "mail" / "01-nl-refund-overdue.eml"),
                    str(ROOT / "examples" / "mail" / "02-en-defect.eml"))
    assert [r["language"] for r in out] == ["nl", "en"]
    assert out[0]["entities"]["orders"] == ["2026-004512"]  # type: ignore[index]
    assert out[0]["entities"]["customer_name"] == "Marieke Jansen"  # type: ignore[index]


def test_bad_input_gives_a_clear_result(shipped: Analyzer) -> None:
    cases = [
        MailText("", ""),
        MailText("Retour", ""),
        MailText("", "mijn pakket is kapot " * 60_000),       # over 1 MB
        MailText("", "\x00\x01\x02\xff" * 1000),
        MailText("", "Mijn order is kapot, can you please send a new one? Dank je wel!"),
        MailText("😡😡😡", "🙄🙄🙄🙄"),
        MailText("", "great service, thanks"),                # too few function words to tell
    ]
    results = shipped.analyse_many(cases)
    assert len(results) == len(cases)
    assert results[0].language == "unknown" and results[0].category == "other"
    assert results[0].explanation == ["no text to analyse"]
    assert results[3].language == "unknown" and results[5].language == "unknown"
    assert results[2].language == "nl"
    assert results[4].language in ("nl", "en")
    assert results[6].language == "en" and "most confident" in results[6].explanation[0]


def test_invalid_json_line_gets_an_error_line_in_its_place() -> None:
    out = _classify(['{"subject": "a", "body": "Where is my order?"}', "not json",
                     '{"subject": "b", "body": "Waar is mijn bestelling?"}'])
    assert len(out) == 3
    assert "error" in out[1] and "<stdin>:2" in str(out[1]["error"])
    assert out[2]["language"] == "nl"


def test_training_on_an_admins_own_labels(small_model: Path) -> None:
    meta = json.loads((small_model / "mailbot.json").read_text())
    assert meta["labels"]["categories"] == ["money_back", "thanks"]
    analyzer = Analyzer.load(small_model)
    [result] = analyzer.analyse_many([MailText("Top!", "Heel erg bedankt voor de snelle hulp, top service.")])
    assert result.category in ("money_back", "thanks")
    assert set(result.category_scores) == {"money_back", "thanks"}


def test_eval_reports_model_and_baseline(small_model: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rows = [json.loads(line) for line in (CORPUS / "dev.jsonl").read_text("utf-8").splitlines()]
    picked = [dict(r, category="money_back" if r["category"] == "refund" else "thanks")
              for r in rows if r["category"] in ("refund", "praise")][:60]
    data = tmp_path / "test.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in picked), "utf-8")
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in picked), "utf-8")
    assert main(["eval", "--data", str(data), "--model", str(small_model), "--train", str(train)]) == 0
    out = capsys.readouterr().out
    assert "model: category" in out and "baseline (TF-IDF + logistic regression): category" in out
    assert "confusion" in out and "macro-F1" in out


def test_invalid_training_file_names_line_and_field(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"subject": "a", "body": "b", "category": "x"}\n{"subject": "a", "body": "b"}\n')
    assert main(["train", "--data", str(data), "--output", str(tmp_path / "m")]) == 2
    assert f"{data}:2: field 'category': missing" in capsys.readouterr().err


def test_saved_pipeline_loads_by_path_with_plain_spacy(tmp_path: Path) -> None:
    """The custom tokenizer and components are registered through entry points, so a
    process that never imports mailbot can spacy.load() the model folder."""
    code = ("import sys, spacy; nlp = spacy.load(sys.argv[1]); "
            "doc = nlp('Stelletje oplichters, waar blijft mijn geld?'); "
            "print(','.join(nlp.pipe_names)); print(max(doc.cats, key=doc.cats.get))")
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "mailbot" / "nlp" / "model" / "nl")],
                          capture_output=True, text=True, check=False, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    names, top = done.stdout.split()
    assert names == ("mailbot_rules,mailbot_entities,mailbot_features,textcat_category,textcat_tone,"
                     "textcat_signals")
    assert top.startswith(("cat:", "tone:", "sig:"))


def test_the_customers_name_comes_from_the_sign_off_of_bare_text(shipped: Analyzer) -> None:
    signed = shipped.analyse("Kapot", "Beste,\n\nMijn koffiezetapparaat is kapot aangekomen.\n\n"
                                      "Met vriendelijke groet,\nAnneke de Vries")
    unsigned = shipped.analyse("Kapot", "Mijn koffiezetapparaat is kapot aangekomen.")
    given = shipped.analyse("Kapot", "Mijn koffiezetapparaat is kapot.\n\nGroet,\nAnneke",
                            sign_off_name="Anneke Jansen")
    assert signed.entities["customer_name"] == "Anneke de Vries"
    assert unsigned.entities["customer_name"] is None
    assert given.entities["customer_name"] == "Anneke Jansen"   # the caller's name wins
