"""Quality of the shipped model on the corpus test split, next to the TF-IDF + logistic
regression baseline trained on the same training split (issue 3's targets).

    .venv/bin/python benchmarks/quality.py [--model DIR] [--full]

Prints category and tone macro-F1 of both, per language too, and whether each target holds:
category >= 0.90, tone >= 0.85, and at least the baseline on both. --full adds the per-label
tables and confusion matrices.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "mailbot" / "nlp" / "corpus"
TARGETS = {"category": 0.90, "tone": 0.85}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.INFO)

    from mailbot.nlp.analyzer import Analyzer
    from mailbot.nlp.data import read_jsonl
    from mailbot.nlp.evaluate import evaluate, load_baseline_train

    analyzer = Analyzer.load(args.model)
    train = load_baseline_train(None)  # train + dev: what the shipped model was fitted on
    test = read_jsonl(CORPUS / "test.jsonl")
    result = evaluate(analyzer, test, baseline_train=train)
    if args.full:
        print(result.format())
    print(f"test split: {len(test)} mails")
    print(f"{'':10} {'model':>7} {'baseline':>9} {'target':>7}  holds")
    for field, target in TARGETS.items():
        model = result.model[field].macro_f1
        base = result.baseline[field].macro_f1
        holds = model >= target and model >= base
        print(f"{field:10} {model:7.4f} {base:9.4f} {target:7.2f}  {'yes' if holds else 'NO'}")
    for lang in ("nl", "en"):
        part = [e for e in test if e.language == lang]
        sub = evaluate(analyzer, part, baseline_train=[e for e in train if e.language == lang])
        print(f"  {lang}: category {sub.model['category'].macro_f1:.3f} (baseline "
              f"{sub.baseline['category'].macro_f1:.3f}), tone {sub.model['tone'].macro_f1:.3f} "
              f"(baseline {sub.baseline['tone'].macro_f1:.3f})")


if __name__ == "__main__":
    main()
