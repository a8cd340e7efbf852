"""``mailbot eval``: the model against labelled data, next to a TF-IDF + logistic-regression
baseline trained on the same training data, so every model is judged against the standard
alternative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbot.errors import ModelError
from mailbot.nlp.analyzer import Analyzer, MailText
from mailbot.nlp.data import Example, read_jsonl
from mailbot.nlp.metrics import Report, format_report, report
from mailbot.nlp.prepare import model_text


@dataclass
class Evaluation:
    n: int
    model: dict[str, Report]
    baseline: dict[str, Report]
    signals: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n,
                "model": {k: v.to_dict() for k, v in self.model.items()},
                "baseline": {k: v.to_dict() for k, v in self.baseline.items()},
                "signals": self.signals}

    def format(self) -> str:
        parts = [f"{self.n} mails"]
        for field in ("category", "tone"):
            if field in self.model:
                parts.append(format_report(f"\nmodel: {field}", self.model[field]))
            if field in self.baseline:
                parts.append(format_report(f"\nbaseline (TF-IDF + logistic regression): {field}",
                                           self.baseline[field]))
        if self.signals:
            parts.append("\nmodel: signals (multi-label)")
            for name, s in sorted(self.signals.items()):
                parts.append(f"  {name:<16} precision {s['precision']:.3f}  recall {s['recall']:.3f}"
                             f"  f1 {s['f1']:.3f}  support {int(s['support'])}")
        summary = ["\nsummary (macro-F1)   model   baseline"]
        for field in ("category", "tone"):
            if field in self.model:
                base = self.baseline.get(field)
                summary.append(f"  {field:<18} {self.model[field].macro_f1:6.3f}   "
                               f"{base.macro_f1 if base else float('nan'):6.3f}")
        parts.append("\n".join(summary))
        return "\n".join(parts)


def evaluate(analyzer: Analyzer, data: Sequence[Example], *,
             baseline_train: Sequence[Example] | None) -> Evaluation:
    results = analyzer.analyse_many([MailText(e.subject, e.body) for e in data])
    model: dict[str, Report] = {}
    labels = analyzer.meta.get("labels", {})
    cat_items = [(e, r) for e, r in zip(data, results, strict=True) if e.category]
    if cat_items:
        model["category"] = report([e.category or "" for e, _ in cat_items],
                                   [r.category for _, r in cat_items], labels.get("categories"))
    tone_items = [(e, r) for e, r in zip(data, results, strict=True) if e.tone]
    if tone_items:
        model["tone"] = report([e.tone or "" for e, _ in tone_items], [r.tone for _, r in tone_items],
                               labels.get("tones"))
    signals = _signal_scores([(e, r.signals) for e, r in zip(data, results, strict=True)
                              if e.signals is not None], labels.get("signals") or [])
    baseline: dict[str, Report] = {}
    if baseline_train:
        baseline = baseline_reports(baseline_train, data)
    return Evaluation(len(data), model, baseline, signals)


def _signal_scores(items: list[tuple[Example, tuple[str, ...]]],
                   names: list[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in names:
        tp = sum(1 for e, p in items if name in (e.signals or ()) and name in p)
        fp = sum(1 for e, p in items if name not in (e.signals or ()) and name in p)
        fn = sum(1 for e, p in items if name in (e.signals or ()) and name not in p)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return out


def baseline_reports(train: Sequence[Example], test: Sequence[Example]) -> dict[str, Report]:
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression, per label family."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    out: dict[str, Report] = {}
    for field in ("category", "tone"):
        tr = [e for e in train if getattr(e, field)]
        te = [e for e in test if getattr(e, field)]
        if not tr or not te or len({getattr(e, field) for e in tr}) < 2:
            continue
        clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                            LogisticRegression(max_iter=2000, C=10.0))
        clf.fit([model_text(e.subject, e.body) for e in tr], [getattr(e, field) for e in tr])
        pred = clf.predict([model_text(e.subject, e.body) for e in te])
        labels = sorted({getattr(e, field) for e in tr})
        out[field] = report([getattr(e, field) for e in te], [str(p) for p in pred], labels)
    return out


CORPUS = Path(__file__).resolve().parent / "corpus"


def load_baseline_train(path: str | Path | None) -> list[Example]:
    """The baseline's training data: ``--train``, else the packaged corpus's train and dev
    splits (the mails the shipped model was fitted on, so both sides see the same data)."""
    if path:
        file = Path(path)
        if not file.is_file():
            raise ModelError(f"no training data for the baseline at {file}")
        return read_jsonl(file)
    files = [CORPUS / "train.jsonl", CORPUS / "dev.jsonl"]
    if not all(f.is_file() for f in files):
        raise ModelError("no training data for the baseline: pass --train FILE.jsonl")
    return [e for f in files for e in read_jsonl(f)]
