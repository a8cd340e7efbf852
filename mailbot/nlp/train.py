"""Training the mail pipeline from labelled JSON lines: ``mailbot train``.

One spaCy pipeline per language in the data (``config.cfg`` beside this file, built from a
blank pipeline), trained with a plain loop so progress can be shown and the best epoch on
the development data kept. The labels are whatever the data holds, so an admin's own
categories work; a line without a tone trains only the category (its tone labels are
masked as missing), and a line without signals trains no signal.

The output folder holds one pipeline folder per language and ``mailbot.json`` with the
labels, the per-signal thresholds chosen on the development data, and the scores.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.training import Example as SpacyExample
from spacy.util import load_config_from_str, load_model_from_config, minibatch
from thinc.api import Adam, fix_random_seed

from mailbot.errors import DataError, ModelError
from mailbot.nlp import components as _components  # noqa: F401 - registers the factories
from mailbot.nlp import features as _features  # noqa: F401 - registers the architecture
from mailbot.nlp.data import Example
from mailbot.nlp.language import detect
from mailbot.nlp.metrics import macro_f1
from mailbot.nlp.prepare import model_text

CAT, TONE, SIG = "cat:", "tone:", "sig:"
COMPONENTS = {"category": "textcat_category", "tone": "textcat_tone", "signals": "textcat_signals"}
MIN_PER_LANGUAGE = 20
META_FILE = "mailbot.json"


@dataclass
class Labels:
    categories: list[str] = field(default_factory=list)
    tones: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, examples: Sequence[Example]) -> Labels:
        return cls(
            categories=sorted({e.category for e in examples if e.category}),
            tones=sorted({e.tone for e in examples if e.tone}),
            signals=sorted({s for e in examples for s in (e.signals or ())}),
        )


def base_config(overrides: dict[str, Any] | None = None) -> Any:
    text = resources.files("mailbot.nlp").joinpath("config.cfg").read_text("utf-8")
    return load_config_from_str(text, overrides=overrides or {})


def language_of(example: Example) -> str:
    return example.language or detect(example.text)[0]


def cats_for(example: Example, labels: Labels) -> dict[str, float]:
    """The gold ``doc.cats``: only the label families the line actually has (others are missing)."""
    cats: dict[str, float] = {}
    if example.category:
        cats.update({CAT + c: float(c == example.category) for c in labels.categories})
    if example.tone:
        cats.update({TONE + t: float(t == example.tone) for t in labels.tones})
    if example.signals is not None:
        cats.update({SIG + s: float(s in example.signals) for s in labels.signals})
    return cats


def build_pipeline(lang: str, labels: Labels, config: Any) -> Language:
    config = config.copy()
    config["nlp"]["lang"] = lang
    pipeline = ["mailbot_rules", "mailbot_entities", COMPONENTS["category"]]
    if labels.tones:
        pipeline.append(COMPONENTS["tone"])
    if labels.signals:
        pipeline.append(COMPONENTS["signals"])
    config["nlp"]["pipeline"] = pipeline
    config["components"] = {k: v for k, v in config["components"].items() if k in pipeline}
    try:
        nlp = load_model_from_config(config, auto_fill=True, validate=True)
    except Exception as exc:  # spaCy raises ConfigValidationError, ValueError, KeyError, ...
        raise ModelError(f"invalid pipeline configuration: {exc}") from exc
    init = nlp.config["initialize"]["components"]
    init[COMPONENTS["category"]] = {"labels": [CAT + c for c in labels.categories]}
    if labels.tones:
        init[COMPONENTS["tone"]] = {"labels": [TONE + t for t in labels.tones]}
    if labels.signals:
        init[COMPONENTS["signals"]] = {"labels": [SIG + s for s in labels.signals]}
    return nlp


@dataclass
class EpochLog:
    epoch: int
    loss: float
    category_f1: float
    tone_f1: float
    seconds: float


@dataclass
class TrainReport:
    languages: dict[str, dict[str, Any]] = field(default_factory=dict)
    output: str = ""


def train(train_data: Sequence[Example], dev_data: Sequence[Example] | None, output: str | Path, *,
          overrides: dict[str, Any] | None = None,
          progress: Callable[[str], None] = lambda line: None) -> TrainReport:
    """Train and save one pipeline per language. Raises DataError / ModelError."""
    if not train_data:
        raise DataError("the training data holds no lines")
    unlabelled = [e for e in train_data if not e.category]
    if unlabelled:
        raise DataError("missing", line=unlabelled[0].line, field="category")
    config = base_config(overrides)
    hyper = dict(config.get("mailbot", {}))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    labels = Labels.of(train_data)
    report = TrainReport(output=str(out))
    by_lang: dict[str, list[Example]] = {}
    for example in train_data:
        by_lang.setdefault(language_of(example), []).append(example)
    dev_by_lang: dict[str, list[Example]] = {}
    for example in dev_data or ():
        dev_by_lang.setdefault(language_of(example), []).append(example)
    languages = sorted(lang for lang, items in by_lang.items()
                       if lang != "unknown" and len(items) >= MIN_PER_LANGUAGE)
    if not languages:
        raise DataError(f"no language has at least {MIN_PER_LANGUAGE} training lines "
                        f"(found: { {k: len(v) for k, v in by_lang.items()} })")
    meta: dict[str, Any] = {
        "labels": {"categories": labels.categories, "tones": labels.tones, "signals": labels.signals},
        "languages": {},
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "train_sha256": _fingerprint(train_data),
    }
    for lang in languages:
        items = by_lang[lang]
        dev = dev_by_lang.get(lang) or []
        if not dev:
            # No development data for this language: hold out every tenth line for model selection.
            dev = items[::10]
            items = [e for i, e in enumerate(items) if i % 10]
        if hyper.get("share_languages"):
            # Mail mixes languages (English product names and quotes in Dutch mail); the
            # other languages' lines are extra evidence for what a category looks like.
            held_out = {id(e) for e in dev}
            items = items + [e for other, rest in by_lang.items() if other != lang
                             for e in rest if id(e) not in held_out]
        progress(f"[{lang}] training on {len(items)} mails, choosing the epoch on {len(dev)}")
        nlp, best = _train_language(lang, items, dev, labels, config, hyper, progress)
        thresholds = _tune_signal_thresholds(nlp, dev, labels)
        nlp.to_disk(out / lang)
        meta["languages"][lang] = {"train": len(items), "dev": len(dev), "best_epoch": best.epoch,
                                   "dev_category_macro_f1": round(best.category_f1, 4),
                                   "dev_tone_macro_f1": round(best.tone_f1, 4),
                                   "signal_thresholds": thresholds}
        report.languages[lang] = meta["languages"][lang]
    (out / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    progress(f"saved to {out}")
    return report


def _train_language(lang: str, items: list[Example], dev: list[Example], labels: Labels, config: Any,
                    hyper: dict[str, Any], progress: Callable[[str], None]) -> tuple[Language, EpochLog]:
    seed = int(hyper.get("seed", 13))
    fix_random_seed(seed)
    rng = random.Random(seed)
    nlp = build_pipeline(lang, labels, config)
    docs = [nlp.make_doc(model_text(e.subject, e.body)) for e in items]
    # Cleaned once: the development data is scored after every epoch.
    dev_texts = [model_text(e.subject, e.body) for e in dev]
    # Rule spans must exist on the docs the classifiers read.
    for name in ("mailbot_rules", "mailbot_entities"):
        pipe = nlp.get_pipe(name)
        docs = [pipe(doc) for doc in docs]
    # spaCy's exclusive textcat refuses gold cats with more than one positive, so each
    # classifier gets examples holding only its own label family (same predicted docs).
    families = {"category": CAT, "tone": TONE, "signals": SIG}
    per_component: dict[str, list[SpacyExample]] = {}
    for key, prefix in families.items():
        name = COMPONENTS[key]
        if name not in nlp.pipe_names:
            continue
        family = []
        for doc, example in zip(docs, items, strict=True):
            cats = {k: v for k, v in cats_for(example, labels).items() if k.startswith(prefix)}
            if cats:
                family.append(SpacyExample.from_dict(doc, {"cats": cats}))
        per_component[name] = family
    optimizer = Adam(learn_rate=float(hyper.get("learn_rate", 0.01)), L2=float(hyper.get("l2", 0.0)))
    nlp.initialize(lambda: per_component[COMPONENTS["category"]], sgd=optimizer)
    best: EpochLog | None = None
    best_bytes: bytes | None = None
    patience = int(hyper.get("patience", 8))
    stale = 0
    for epoch in range(1, int(hyper.get("max_epochs", 40)) + 1):
        started = time.perf_counter()
        losses: dict[str, float] = {}
        for name, family in per_component.items():
            rng.shuffle(family)
            for batch in minibatch(family, size=int(hyper.get("batch_size", 32))):
                textcat: Any = nlp.get_pipe(name)  # TextCategorizer; get_pipe is typed loosely
                textcat.update(batch, drop=float(hyper.get("dropout", 0.0)), sgd=optimizer,
               losses=losses)
        # Parameter averaging: the running average of the weights generalises better than
        # the last step, so it is what we score and what we keep.
        with nlp.use_params(optimizer.averages):
            cat_f1, tone_f1 = _dev_scores(nlp, dev, dev_texts, labels)
            snapshot = nlp.to_bytes()
        log = EpochLog(epoch, sum(losses.values()), cat_f1, tone_f1, time.perf_counter() - started)
        improved = best is None or (cat_f1 + tone_f1) > (best.category_f1 + best.tone_f1) + 1e-4
        progress(f"[{lang}] epoch {epoch:>2}  loss {log.loss:8.3f}  dev category macro-F1 {cat_f1:.3f}"
                 f"  tone macro-F1 {tone_f1:.3f}  ({log.seconds:.1f} s){'  *' if improved else ''}")
        if improved:
            best, best_bytes, stale = log, snapshot, 0
        else:
            stale += 1
            if stale >= patience:
                progress(f"[{lang}] no improvement for {patience} epochs; stopping")
                break
    assert best is not None and best_bytes is not None
    nlp.from_bytes(best_bytes)
    return nlp, best


def predict_cats(nlp: Language, texts: Sequence[str]) -> list[dict[str, float]]:
    return [dict(doc.cats) for doc in nlp.pipe(texts, batch_size=256)]


def _dev_scores(nlp: Language, dev: Sequence[Example], dev_texts: Sequence[str],
                labels: Labels) -> tuple[float, float]:
    if not dev:
        return 0.0, 0.0
    cats = predict_cats(nlp, dev_texts)
    cat_gold = [e.category or "" for e in dev]
    cat_pred = [_argmax(c, CAT) for c in cats]
    tone_pairs = [(e.tone, _argmax(c, TONE)) for e, c in zip(dev, cats, strict=True) if e.tone]
    cat_f1 = macro_f1(cat_gold, cat_pred, labels.categories)
    tone_f1 = (macro_f1([g for g, _ in tone_pairs], [p for _, p in tone_pairs], labels.tones)
               if tone_pairs else 0.0)
    return cat_f1, tone_f1


def _argmax(cats: dict[str, float], prefix: str) -> str:
    best, score = "", -1.0
    for key, value in cats.items():
        if key.startswith(prefix) and value > score:
            best, score = key[len(prefix):], value
    return best


def _tune_signal_thresholds(nlp: Language, dev: Sequence[Example], labels: Labels) -> dict[str, float]:
    """Per signal, the probability threshold with the best F1 on the development data."""
    items = [e for e in dev if e.signals is not None]
    if not labels.signals or not items:
        return {}
    cats = predict_cats(nlp, [model_text(e.subject, e.body) for e in items])
    thresholds: dict[str, float] = {}
    for signal in labels.signals:
        gold = [signal in (e.signals or ()) for e in items]
        best_t, best_f = 0.5, -1.0
        for step in range(10, 91, 5):
            t = step / 100
            pred = [c.get(SIG + signal, 0.0) >= t for c in cats]
            tp = sum(g and p for g, p in zip(gold, pred, strict=True))
            fp = sum(p and not g for g, p in zip(gold, pred, strict=True))
            fn = sum(g and not p for g, p in zip(gold, pred, strict=True))
            f = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
            # Prefer the higher threshold on ties: fewer false alarms for agents.
            if f > best_f + 1e-9 or (abs(f - best_f) <= 1e-9 and t > best_t):
                best_t, best_f = t, f
        thresholds[signal] = best_t
    return thresholds


def _fingerprint(examples: Sequence[Example]) -> str:
    digest = hashlib.sha256()
    for e in examples:
        digest.update(f"{e.subject}\x00{e.body}\x00{e.category}\x00{e.tone}\x00{e.signals}\n".encode())
    return digest.hexdigest()


def load_pipeline(path: str | Path) -> Language:
    """Load one saved language pipeline (the custom parts are registered by this module)."""
    try:
        return spacy.load(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load the model at {path}: {exc}") from exc
