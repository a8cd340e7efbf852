"""The analysis of a mail: language, category, tone, signals, entities, and why.

``Analyzer`` loads a trained model folder (one spaCy pipeline per language plus
``mailbot.json``) and turns a subject and body into an ``Analysis``. It never raises for any
text: empty mail, binary junk or a language it was not trained on gives language ``unknown``
and category ``other`` with an explanation that says so.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc

from mailbot.errors import ModelError
from mailbot.models import Analysis
from mailbot.nlp.components import entities, rule_hits
from mailbot.nlp.language import detect
from mailbot.nlp.prepare import prepare
from mailbot.nlp.train import CAT, COMPONENTS, META_FILE, SIG, TONE, load_pipeline

# Rule labels that are about tone, and the tone they point to (for the explanation and the
# safety net below).
_TONE_RULES = {"threat": "threatening", "insult": "abusive", "swear": "abusive", "distress": "distressed"}
_SIGNAL_RULES = ("legal_threat", "public_threat", "misuse", "repeat_contact", "churn_threat", "urgent")
_REAL_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ]{3,}")
_NAME = re.compile(r"^[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ'’.\-]*(?: [A-Za-zÀ-ÿ][A-Za-zÀ-ÿ'’.\-]*){0,3}$")


def packaged_model_path() -> Path:
    """The model shipped inside the package (built by scripts/build-model)."""
    return Path(str(resources.files("mailbot.nlp").joinpath("model")))


@dataclass(frozen=True)
class MailText:
    subject: str
    body: str
    from_name: str = ""
    sign_off_name: str | None = None


class Analyzer:
    """Loaded once per process; ``analyse`` and ``analyse_many`` are safe to call repeatedly."""

    def __init__(self, pipelines: dict[str, Language], meta: dict[str, Any], path: Path) -> None:
        self.pipelines = pipelines
        self.meta = meta
        self.path = path
        self._thresholds = {lang: info.get("signal_thresholds", {})
                            for lang, info in meta.get("languages", {}).items()}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path | None = None) -> Analyzer:
        folder = Path(path) if path else packaged_model_path()
        meta_file = folder / META_FILE
        if not meta_file.is_file():
            raise ModelError(f"no trained model at {folder} ({META_FILE} is missing); "
                             "build one with `mailbot train` or scripts/build-model")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read {meta_file}: {exc}") from exc
        pipelines = {lang: load_pipeline(folder / lang) for lang in meta.get("languages", {})}
        if not pipelines:
            raise ModelError(f"the model at {folder} has no language pipelines")
        return cls(pipelines, meta, folder)

    # ------------------------------------------------------------------ public

    def analyse(self, subject: str, body: str, *, from_name: str = "",
                sign_off_name: str | None = None) -> Analysis:
        return self.analyse_many([MailText(subject, body, from_name, sign_off_name)])[0]

    def analyse_many(self, mails: Sequence[MailText], *, batch_size: int = 256) -> list[Analysis]:
        """Analyse in batches per language (nlp.pipe), results in input order.

        Safe to call from several mailbox threads: spaCy's tokenizer cache and string store,
        and the explanation cache, are not made for concurrent writers, so calls take turns.
        """
        with self._lock:
            return self._analyse_many(mails, batch_size)

    def _analyse_many(self, mails: Sequence[MailText], batch_size: int) -> list[Analysis]:
        prepared = [prepare(_text(m.subject), _text(m.body)) for m in mails]
        texts = [text for text, _ in prepared]
        # The caller's sign-off name wins (the daemon has it from cleaning already); mail
        # given as bare text (classify, respond) gets the one found here.
        mails = [m if m.sign_off_name is not None or not name else replace(m, sign_off_name=name)
                 for m, (_, name) in zip(mails, prepared, strict=True)]
        langs = [detect(t)[0] for t in texts]
        results: list[Analysis | None] = [None] * len(mails)
        for lang, nlp in self.pipelines.items():
            idx = [i for i, found in enumerate(langs) if found == lang]
            if not idx:
                continue
            docs = nlp.pipe((texts[i] for i in idx), batch_size=batch_size)
            for i, doc in zip(idx, docs, strict=True):
                results[i] = self._analysis(lang, nlp, doc, mails[i])
        for i, result in enumerate(results):
            if result is None:
                results[i] = self._guess(texts[i], mails[i]) or self._unknown(langs[i], texts[i], mails[i])
        return [r for r in results if r is not None]

    def _guess(self, text: str, mail: MailText) -> Analysis | None:
        """Short mail with too few function words ("great service, thanks", "Idioten."):
        run every pipeline and keep the one most sure of its category. Text without real
        words (junk, emoji, a lone order number) stays unknown."""
        if len(_REAL_WORD.findall(text[:2000])) < 2:
            return None
        best: Analysis | None = None
        for lang, nlp in self.pipelines.items():
            analysis = self._analysis(lang, nlp, nlp(text), mail)
            if best is None or analysis.confidence > best.confidence:
                best = analysis
        if best is not None:
            best.explanation[0] = (f"language {best.language} (too few function words to tell; "
                                   f"the {best.language} model was the most confident)")
        return best

    # ------------------------------------------------------------------ internals

    def _analysis(self, lang: str, nlp: Language, doc: Doc, mail: MailText) -> Analysis:
        cat_scores = _family(doc.cats, CAT)
        tone_scores = _family(doc.cats, TONE)
        sig_scores = _family(doc.cats, SIG)
        category = max(cat_scores, key=cat_scores.__getitem__) if cat_scores else "other"
        tone = max(tone_scores, key=tone_scores.__getitem__) if tone_scores else "neutral"
        hits = rule_hits(doc)
        hit_labels = {label for label, _ in hits}
        explanation: list[str] = [f"language {lang} (function words)"]
        # Safety net: an explicit threat of harm found by the lexicon is never filed as a
        # milder tone when the classifier gives threatening real weight. Threats must reach
        # a person; a false alarm costs an agent a glance.
        if ("threat" in hit_labels and tone != "threatening"
                and tone_scores.get("threatening", 0.0) >= 0.2):
            explanation.append(f"tone raised to threatening by the threat rule "
                               f"(classifier said {tone} {tone_scores[tone]:.2f})")
            tone = "threatening"
        thresholds = self._thresholds.get(lang, {})
        signals = [s for s, p in sig_scores.items() if p >= thresholds.get(s, 0.5)]
        explanation.extend(self._why(nlp, doc, category, tone, cat_scores, tone_scores))
        for label, text in hits[:12]:
            explanation.append(f"rule {label}: {text!r}")
        ents = entities(doc)
        ents["customer_name"] = customer_name(mail.from_name, mail.sign_off_name)
        return Analysis(
            language=lang,
            category=category,
            category_scores=_rounded(cat_scores),
            tone=tone,
            tone_scores=_rounded(tone_scores),
            signals=tuple(sorted(signals)),
            entities=ents,
            explanation=explanation,
        )

    def _why(self, nlp: Language, doc: Doc, category: str, tone: str,
             cat_scores: dict[str, float], tone_scores: dict[str, float]) -> list[str]:
        """The words (and rule labels) that pushed hardest towards the chosen labels."""
        return [f"category {category} ({cat_scores.get(category, 0.0):.2f})"
                + _because(nlp, doc, "category", category),
                f"tone {tone} ({tone_scores.get(tone, 0.0):.2f})" + _because(nlp, doc, "tone", tone)]

    def _unknown(self, lang: str, text: str, mail: MailText) -> Analysis:
        reason = ("no text to analyse" if not text.strip() else
                  f"language {lang}: too few Dutch or English words to analyse")
        return Analysis(
            language="unknown",
            category="other",
            category_scores={},
            tone="neutral",
            tone_scores={},
            signals=(),
            entities={"orders": [], "amounts": [], "dates": [], "products": [],
                      "customer_name": customer_name(mail.from_name, mail.sign_off_name)},
            explanation=[reason],
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _family(cats: dict[str, float], prefix: str) -> dict[str, float]:
    return {k[len(prefix):]: float(v) for k, v in cats.items() if k.startswith(prefix)}


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in sorted(scores.items(), key=lambda kv: -kv[1])}


def _because(nlp: Language, doc: Doc, family: str, label: str) -> str:
    name = COMPONENTS[family]
    if name not in nlp.pipe_names:
        return ""
    pipe: Any = nlp.get_pipe(name)
    words = pipe.explain(doc, label)
    return f" because of: {', '.join(words)}" if words else ""


def customer_name(from_name: str, sign_off_name: str | None) -> str | None:
    """The name to address the customer by: the sign-off name, else the From display name.

    >>> customer_name('"de Vries, Jan"', None)
    'Jan de Vries'
    >>> customer_name("info@example.com", "Marieke")
    'Marieke'
    >>> customer_name("", None) is None
    True
    """
    for candidate in (sign_off_name, from_name):
        name = (candidate or "").strip().strip('"\'').strip()
        if not name or "@" in name:
            continue
        if "," in name:  # "Surname, Given" as Outlook writes it
            last, _, first = name.partition(",")
            name = f"{first.strip()} {last.strip()}".strip()
        name = " ".join(name.split())
        if (_NAME.match(name) and not name.isupper()) or _NAME.match(name.title()):
            return name if not name.islower() else name.title()
    return None


def analyses_to_json(items: Iterable[Analysis]) -> list[str]:
    return [json.dumps(a.to_dict(), ensure_ascii=False) for a in items]
