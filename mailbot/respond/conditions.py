"""The ``when:`` block shared by macros and policy rules: matching, and reasoning about overlap.

Matching is the runtime job. The set operations (``covers``, ``overlaps``) are for the linter:
they treat a condition as the set of analyses it accepts, which is exact because every key is
a simple membership or threshold test.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from mailbot.models import CATEGORIES, LANGUAGES, SIGNALS, TONES, Analysis

ENTITY_KINDS: tuple[str, ...] = ("orders", "amounts", "dates", "products", "customer_name")

_VOCABULARY: dict[str, tuple[str, tuple[str, ...]]] = {
    "categories": ("category", CATEGORIES),
    "tones": ("tone", TONES),
    "signals": ("signal", SIGNALS),
    "not_signals": ("signal", SIGNALS),
    "languages": ("language", LANGUAGES),
    "entities": ("entity kind", ENTITY_KINDS),
}
_SETS = ("categories", "tones", "languages")


class When(BaseModel):
    """Every key is optional; all keys given must hold. ``None`` means "any"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: tuple[str, ...] | None = None
    tones: tuple[str, ...] | None = None
    signals: tuple[str, ...] = ()            # all of these present
    not_signals: tuple[str, ...] = ()        # none of these present
    languages: tuple[str, ...] | None = None
    min_confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    entities: tuple[str, ...] = ()           # these entity lists are non-empty

    # ------------------------------------------------------------------ runtime

    def matches(self, analysis: Analysis) -> bool:
        if self.categories is not None and analysis.category not in self.categories:
            return False
        if self.tones is not None and analysis.tone not in self.tones:
            return False
        if self.languages is not None and analysis.language not in self.languages:
            return False
        present = set(analysis.signals)
        if not present.issuperset(self.signals) or present.intersection(self.not_signals):
            return False
        if self.min_confidence is not None and analysis.confidence < self.min_confidence:
            return False
        return all(analysis.entities.get(kind) for kind in self.entities)

    def describe(self) -> str:
        """A short human description for reasons: ``categories defect; tones neutral|frustrated``."""
        parts = []
        for name in ("categories", "tones", "languages", "signals", "not_signals", "entities"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name} {'|'.join(value)}")
        if self.min_confidence is not None:
            parts.append(f"min_confidence {self.min_confidence:g}")
        return "; ".join(parts) or "any mail"

    # ------------------------------------------------------------------ lint

    def vocabulary_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Unknown names, as (key path inside ``when``, message)."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name, (label, allowed) in _VOCABULARY.items():
            for index, value in enumerate(getattr(self, name) or ()):
                if value not in allowed:
                    problems.append(((name, index),
                                     f"unknown {label} {value!r} (one of: {', '.join(allowed)})"))
        return problems

    def satisfiable(self) -> bool:
        """False when no analysis can ever match (an empty list, a signal both wanted and not)."""
        if any(getattr(self, name) == () for name in _SETS):
            return False
        return not set(self.signals) & set(self.not_signals)

    def covers(self, other: When) -> bool:
        """Every analysis that matches ``other`` also matches ``self``."""
        for name in _SETS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and (theirs is None or not set(theirs) <= set(mine)):
                return False
        return (set(self.signals) <= set(other.signals)
                and set(self.not_signals) <= set(other.not_signals)
                and (self.min_confidence or 0.0) <= (other.min_confidence or 0.0)
                and set(self.entities) <= set(other.entities))

    def overlaps(self, other: When) -> bool:
        """Some analysis matches both."""
        if not (self.satisfiable() and other.satisfiable()):
            return False
        for name in _SETS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and not set(mine) & set(theirs):
                return False
        wanted = set(self.signals) | set(other.signals)
        return not wanted & (set(self.not_signals) | set(other.not_signals))

    def guaranteed_entities(self) -> frozenset[str]:
        return frozenset(self.entities)
