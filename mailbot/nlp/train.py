"""Training the mail pipeline from labelled JSON lines: ``mailbot train``.

One spaCy pipeline per language in the data (``config.cfg`` beside this file, built from a
blank pipeline). The rule and entity components need no training; the feature table
(``mailbot_features``) is learned from the training mail, and each label family's linear
model (``mailbot_textcat``) is fitted as a logistic regression (scikit-learn, a convex
problem with one exact optimum instead of an SGD loop whose result depends on the epoch),
trying a few regularisation strengths and keeping the best on the development data.

The labels are whatever the data holds, so an admin's own categories work; a line without a
tone trains only the category, and a line without signals trains no signal.

The output folder holds one pipeline folder per language and ``mailbot.json`` with the
labels, the per-signal thresholds chosen on the development data, and the scores.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy
import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import load_config_from_str, load_model_from_config

from mailbot.errors import DataError, ModelError
from mailbot.nlp import components as _components  # noqa: F401 - registers the factories
from mailbot.nlp import tokenizer as _tokenizer  # noqa: F401 - registers the tokenizer
from mailbot.nlp.data import Example
from mailbot.nlp.language import detect
from mailbot.nlp.linear import MailFeatures
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
    pipeline = ["mailbot_rules", "mailbot_entities", "mailbot_features", COMPONENTS["category"]]
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
    return nlp


@dataclass
class TrainReport:
    languages: dict[str, dict[str, Any]] = field(default_factory=dict)
    output: str = ""


@dataclass
class Fitted:
    """One label family's chosen model and its development score."""

    labels: list[str]
    weights: numpy.ndarray
    bias: numpy.ndarray
    c: float
    dev_f1: float
    thresholds: dict[str, float] = field(default_factory=dict)
    signal_c: dict[str, float] = field(default_factory=dict)


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
    if len(labels.categories) < 2:
        raise DataError(f"the training data has only one category ({labels.categories[0]!r}); "
                        "a classifier needs at least two")
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
    for lang in languages:
        if not dev_by_lang.get(lang):
            # No development data for this language: hold out every tenth line for model selection.
            items = by_lang[lang]
            dev_by_lang[lang] = items[::10]
            by_lang[lang] = [e for i, e in enumerate(items) if i % 10]
    nlps = {lang: build_pipeline(lang, labels, config) for lang in languages}
    meta: dict[str, Any] = {
        "labels": {"categories": labels.categories, "tones": labels.tones, "signals": labels.signals},
        "languages": {},
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "train_sha256": _fingerprint(train_data),
    }
    # Which lines train which language's model: its own, or (share_languages) every language's.
    groups: list[list[str]] = ([languages] if hyper.get("share_languages")
                               else [[lang] for lang in languages])
    for group in groups:
        items = [e for lang in (languages if len(group) > 1 else group) for e in by_lang[lang]]
        dev = [e for lang in group for e in dev_by_lang[lang]]
        started = time.perf_counter()
        name = "+".join(group)
        progress(f"[{name}] reading {len(items)} training and {len(dev)} development mails")
        train_docs = _docs(nlps, items, languages)
        dev_docs = _docs(nlps, dev, languages)
        space = _features_of(nlps[group[0]])
        space.space.fit(train_docs, min_df=int(hyper.get("min_df", 2)))
        progress(f"[{name}] {space.space.size:,} features from {len(items)} mails "
                 f"({time.perf_counter() - started:.1f} s)")
        x_train = space.space.vectorize(train_docs).matrix()
        x_dev = space.space.vectorize(dev_docs).matrix()
        fitted = _fit_families(items, dev, x_train, x_dev, labels, hyper, f"[{name}]", progress)
        # The development scores, measured before any refit (afterwards dev is training data).
        scores: dict[str, tuple[float, float]] = {}
        for lang in group:
            _install(nlps[lang], space.space, fitted)
            scores[lang] = _dev_scores(nlps[lang], dev_by_lang[lang], labels)
        refit = bool(hyper.get("refit_on_dev")) and bool(dev)
        if refit:
            # The settings are chosen; the development mails are worth more as training data
            # for the model that ships than as a score nobody reads again. (The test data
            # never takes part in any of this.)
            started = time.perf_counter()
            space.space.fit(train_docs + dev_docs, min_df=int(hyper.get("min_df", 2)))
            x_all = space.space.vectorize(train_docs + dev_docs).matrix()
            fitted = _refit([*items, *dev], x_all, fitted, labels, int(hyper.get("seed", 13)))
            progress(f"[{name}] refitted on {len(items) + len(dev)} training and development mails "
                     f"with the chosen settings ({time.perf_counter() - started:.1f} s)")
        for lang in group:
            nlp = nlps[lang]
            _install(nlp, space.space, fitted)
            nlp.to_disk(out / lang)
            meta["languages"][lang] = {
                "train": len(items) + (len(dev) if refit else 0), "dev": len(dev_by_lang[lang]),
                "dev_category_macro_f1": round(scores[lang][0], 4),
                "dev_tone_macro_f1": round(scores[lang][1], 4),
                "refit_on_dev": refit,
                "c": {key: fit.c for key, fit in fitted.items()},
                "signal_thresholds": fitted["signals"].thresholds if "signals" in fitted else {},
            }
            report.languages[lang] = meta["languages"][lang]
            progress(f"[{lang}] dev category macro-F1 {scores[lang][0]:.3f}, "
                     f"tone macro-F1 {scores[lang][1]:.3f}")
    (out / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    progress(f"saved to {out}")
    return report


def _install(nlp: Language, space: Any, fitted: dict[str, Fitted]) -> None:
    _features_of(nlp).space = space
    for key, fit in fitted.items():
        pipe: Any = nlp.get_pipe(COMPONENTS[key])
        pipe.set_weights(fit.labels, fit.weights, fit.bias)


def _refit(items: Sequence[Example], x: Any, fitted: dict[str, Fitted], labels: Labels,
           seed: int) -> dict[str, Fitted]:
    """Fit every family again on ``items`` with the settings chosen before."""
    out: dict[str, Fitted] = {}
    for key in ("category", "tone"):
        if key not in fitted:
            continue
        rows = [i for i, e in enumerate(items) if getattr(e, key)]
        w, b, classes = _logistic(x[rows], [getattr(items[i], key) for i in rows], fitted[key].c, seed)
        names = labels.categories if key == "category" else labels.tones
        out[key] = _expand(classes, names, w, b, fitted[key].c)
        out[key].dev_f1 = fitted[key].dev_f1
    if "signals" in fitted:
        old = fitted["signals"]
        rows = [i for i, e in enumerate(items) if e.signals is not None]
        columns_w, columns_b = [], []
        for j, signal in enumerate(old.labels):
            y = [signal in (items[i].signals or ()) for i in rows]
            if len(set(y)) < 2:
                columns_w.append(numpy.zeros((x.shape[1],), numpy.float32))
                columns_b.append(float(old.bias[j]))
                continue
            ws, bs, _ = _logistic(x[rows], y, old.signal_c.get(signal, old.c), seed)
            columns_w.append(ws[:, -1])
            columns_b.append(float(bs[-1]))
        out["signals"] = Fitted(list(old.labels), numpy.stack(columns_w, axis=1),
                                numpy.asarray(columns_b, dtype=numpy.float32), old.c, 0.0,
                                old.thresholds, old.signal_c)
    return out


def _features_of(nlp: Language) -> MailFeatures:
    pipe: Any = nlp.get_pipe("mailbot_features")
    return pipe


def _docs(nlps: dict[str, Language], examples: Sequence[Example], languages: list[str]) -> list[Doc]:
    """Each mail through its own language's tokenizer, rules and entities (not the models)."""
    docs: list[Doc] = []
    for example in examples:
        nlp = nlps.get(language_of(example)) or nlps[languages[0]]
        doc = nlp.make_doc(model_text(example.subject, example.body))
        for name in ("mailbot_rules", "mailbot_entities"):
            doc = nlp.get_pipe(name)(doc)
        docs.append(doc)
    return docs


def _fit_families(items: Sequence[Example], dev: Sequence[Example], x_train: Any, x_dev: Any,
                  labels: Labels, hyper: dict[str, Any], tag: str,
                  progress: Callable[[str], None]) -> dict[str, Fitted]:
    fitted: dict[str, Fitted] = {}
    for key, attr in (("category", "category"), ("tone", "tone")):
        rows = [i for i, e in enumerate(items) if getattr(e, attr)]
        dev_rows = [i for i, e in enumerate(dev) if getattr(e, attr)]
        names = labels.categories if key == "category" else labels.tones
        if len({getattr(items[i], attr) for i in rows}) < 2:
            continue
        y = [getattr(items[i], attr) for i in rows]
        y_dev = [getattr(dev[i], attr) for i in dev_rows]
        best: Fitted | None = None
        for c in hyper.get(f"{key}_c", [5.0]):
            started = time.perf_counter()
            w, b, classes = _logistic(x_train[rows], y, float(c), int(hyper.get("seed", 13)))
            fit = _expand(classes, names, w, b, float(c))
            pred = _predict_exclusive(x_dev[dev_rows], fit) if dev_rows else []
            fit.dev_f1 = macro_f1(y_dev, pred, names) if dev_rows else 0.0
            mark = best is None or fit.dev_f1 > best.dev_f1 + 1e-9
            progress(f"{tag} {key}: C={c:g} dev macro-F1 {fit.dev_f1:.3f} "
                     f"({time.perf_counter() - started:.1f} s){'  *' if mark else ''}")
            if mark:
                best = fit
        if best is not None:
            fitted[key] = best
    sig_rows = [i for i, e in enumerate(items) if e.signals is not None]
    dev_sig = [i for i, e in enumerate(dev) if e.signals is not None]
    if labels.signals and sig_rows:
        columns_w: list[numpy.ndarray] = []
        columns_b: list[float] = []
        thresholds: dict[str, float] = {}
        chosen: list[float] = []
        for signal in labels.signals:
            y = [signal in (items[i].signals or ()) for i in sig_rows]
            gold = [signal in (dev[i].signals or ()) for i in dev_sig]
            best_sig: tuple[float, float, float, numpy.ndarray, float] | None = None  # f1, t, C, w, b
            for c in hyper.get("signals_c", [5.0]):
                if len(set(y)) < 2:
                    sig_w = numpy.zeros((x_train.shape[1],), dtype=numpy.float32)
                    sig_b = 10.0 if y and y[0] else -10.0
                else:
                    ws, bs, _ = _logistic(x_train[sig_rows], y, float(c), int(hyper.get("seed", 13)))
                    sig_w, sig_b = ws[:, -1], float(bs[-1])  # the column of the class True
                probs = (1.0 / (1.0 + numpy.exp(-(x_dev[dev_sig] @ sig_w + sig_b))) if dev_sig
                         else numpy.zeros(0))
                f1, t = _best_threshold(gold, probs)
                if best_sig is None or f1 > best_sig[0] + 1e-9:
                    best_sig = (f1, t, float(c), sig_w, sig_b)
            assert best_sig is not None
            f1, t, c_best, sig_w, sig_b = best_sig
            progress(f"{tag} signal {signal}: C={c_best:g} threshold {t:.2f} dev F1 {f1:.3f}")
            columns_w.append(sig_w)
            columns_b.append(sig_b)
            thresholds[signal] = t
            chosen.append(c_best)
        fitted["signals"] = Fitted(list(labels.signals), numpy.stack(columns_w, axis=1),
                                   numpy.asarray(columns_b, dtype=numpy.float32),
                                   max(chosen), 0.0, thresholds,
                                   dict(zip(labels.signals, chosen, strict=True)))
    return fitted


def _logistic(x: Any, y: Sequence[Any], c: float,
              seed: int) -> tuple[numpy.ndarray, numpy.ndarray, list[Any]]:
    """Weights (features x classes), bias and classes of a fitted logistic regression."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=3000, random_state=seed)
    clf.fit(x, list(y))
    coef = numpy.asarray(clf.coef_, dtype=numpy.float32)
    bias = numpy.asarray(clf.intercept_, dtype=numpy.float32)
    classes = list(clf.classes_)
    if coef.shape[0] == 1:  # two classes: sklearn keeps one row; softmax([0, z]) = sigmoid(z)
        coef = numpy.vstack([numpy.zeros_like(coef), coef])
        bias = numpy.asarray([0.0, bias[0]], dtype=numpy.float32)
    return coef.T, bias, classes


def _expand(classes: list[Any], names: list[str], w: numpy.ndarray, b: numpy.ndarray, c: float) -> Fitted:
    """Weights for every label name; a label the lines of this family lack gets no chance."""
    weights = numpy.zeros((w.shape[0], len(names)), dtype=numpy.float32)
    bias = numpy.full((len(names),), -30.0, dtype=numpy.float32)
    for j, cls in enumerate(classes):
        k = names.index(str(cls))
        weights[:, k] = w[:, j]
        bias[k] = b[j]
    return Fitted(list(names), weights, bias, c, 0.0)


def _predict_exclusive(x: Any, fit: Fitted) -> list[str]:
    scores = numpy.asarray(x @ fit.weights) + fit.bias
    return [fit.labels[i] for i in scores.argmax(axis=1).tolist()]


def _best_threshold(gold: Sequence[bool], probs: numpy.ndarray) -> tuple[float, float]:
    """The probability threshold with the best F1 on the development data (ties: higher)."""
    best_t, best_f = 0.5, -1.0
    for step in range(10, 91, 5):
        t = step / 100
        pred = probs >= t
        tp = int(sum(1 for g, p in zip(gold, pred, strict=True) if g and p))
        fp = int(sum(1 for g, p in zip(gold, pred, strict=True) if p and not g))
        fn = int(sum(1 for g, p in zip(gold, pred, strict=True) if g and not p))
        f = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        # Prefer the higher threshold on ties: fewer false alarms for agents.
        if f > best_f + 1e-9 or (abs(f - best_f) <= 1e-9 and t > best_t):
            best_t, best_f = t, f
    return best_f, best_t


def predict_cats(nlp: Language, texts: Sequence[str]) -> list[dict[str, float]]:
    return [dict(doc.cats) for doc in nlp.pipe(texts, batch_size=256)]


def _dev_scores(nlp: Language, dev: Sequence[Example], labels: Labels) -> tuple[float, float]:
    if not dev:
        return 0.0, 0.0
    cats = predict_cats(nlp, [model_text(e.subject, e.body) for e in dev])
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
