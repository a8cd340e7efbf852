"""Precision, recall, F1 per label, macro-F1 and the confusion matrix, without dependencies.

>>> round(macro_f1(["a", "b", "b"], ["a", "b", "a"], ["a", "b"]), 3)
0.667
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LabelScore:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Report:
    labels: list[str]
    scores: list[LabelScore]
    macro_f1: float
    accuracy: float
    confusion: list[list[int]]          # rows: gold, columns: predicted, in ``labels`` order

    def to_dict(self) -> dict[str, object]:
        return {
            "labels": self.labels,
            "per_label": {s.label: {"precision": round(s.precision, 4), "recall": round(s.recall, 4),
                                    "f1": round(s.f1, 4), "support": s.support} for s in self.scores},
            "macro_f1": round(self.macro_f1, 4),
            "accuracy": round(self.accuracy, 4),
            "confusion": self.confusion,
        }


def report(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None) -> Report:
    """Scores over the labels (gold ones plus any predicted); macro-F1 averages gold labels."""
    names = list(labels) if labels else sorted(set(gold))
    extra = sorted({p for p in pred if p not in names})
    every = names + extra
    index = {label: i for i, label in enumerate(every)}
    confusion = [[0] * len(every) for _ in every]
    for g, p in zip(gold, pred, strict=True):
        if g in index:
            confusion[index[g]][index[p]] += 1
    scores = []
    for i, label in enumerate(every):
        tp = confusion[i][i]
        predicted = sum(row[i] for row in confusion)
        actual = sum(confusion[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.append(LabelScore(label, precision, recall, f1, actual))
    present = [s for s in scores if s.support > 0]
    macro = sum(s.f1 for s in present) / len(present) if present else 0.0
    accuracy = sum(confusion[i][i] for i in range(len(every))) / len(gold) if gold else 0.0
    return Report(every, scores, macro, accuracy, confusion)


def macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None) -> float:
    return report(gold, pred, labels).macro_f1


def format_report(title: str, rep: Report) -> str:
    """A plain-text table: per-label scores, macro-F1, accuracy, and the confusion matrix."""
    width = max([len(label) for label in rep.labels] + [10])
    lines = [title, f"  {'label':<{width}}  precision  recall     f1  support"]
    for s in rep.scores:
        lines.append(f"  {s.label:<{width}}  {s.precision:9.3f}  {s.recall:6.3f}  {s.f1:5.3f}"
                     f"  {s.support:7d}")
    lines.append(f"  {'macro-F1':<{width}}  {rep.macro_f1:.3f}    accuracy {rep.accuracy:.3f}")
    short = [label[:6] for label in rep.labels]
    lines.append("  confusion (rows gold, columns predicted):")
    lines.append(f"  {'':<{width}}  " + " ".join(f"{s:>6}" for s in short))
    for label, row in zip(rep.labels, rep.confusion, strict=True):
        lines.append(f"  {label:<{width}}  " + " ".join(f"{v:>6}" for v in row))
    return "\n".join(lines)
