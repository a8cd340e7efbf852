"""A loaded, linted macro set: the macros, the policy and the Jinja2 environment, frozen.

A reload builds a whole new ``MacroSet`` and swaps it in; nothing in a set changes after it
is built, so threads can keep using the one they hold while a new one is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from jinja2 import Environment

from mailbot.errors import UnknownMacroError
from mailbot.models import Analysis
from mailbot.respond.findings import Finding
from mailbot.respond.macros import Macro
from mailbot.respond.policy import Policy
from mailbot.respond.render import Snippet


@dataclass(frozen=True, slots=True)
class Selection:
    macro: Macro | None
    fallback: bool                   # no macro matched; the policy's fallback_macro was used
    matched: tuple[str, ...]         # every macro that matched, best first

    def describe(self) -> str:
        if self.macro is None:
            return "no macro matched and the policy names no fallback_macro"
        if self.fallback:
            return f"no macro matched; fallback macro {self.macro.id}"
        others = f" (also matched: {', '.join(self.matched[1:])})" if len(self.matched) > 1 else ""
        return (f"macro {self.macro.id} (priority {self.macro.priority}; when: "
                f"{self.macro.when.describe()}){others}")


@dataclass(frozen=True)
class MacroSet:
    macros: tuple[Macro, ...]        # in selection order: higher priority first, then by id
    policy: Policy
    env: Environment
    snippets: Mapping[str, Snippet]
    loaded_at: datetime
    warnings: tuple[Finding, ...] = ()

    def get(self, macro_id: str) -> Macro:
        for macro in self.macros:
            if macro.id == macro_id:
                return macro
        raise UnknownMacroError(macro_id)

    def select(self, analysis: Analysis) -> Selection:
        """The highest-priority macro whose ``when`` matches; ties go to the id that sorts
        first (the linter reports macros that can tie). The policy's ``fallback_macro`` is
        only the fallback: it does not compete, so a catch-all fallback cannot shadow others."""
        fallback = self.policy.spec.fallback_macro
        matched = tuple(m.id for m in self.macros if m.id != fallback and m.when.matches(analysis))
        if matched:
            return Selection(self.get(matched[0]), False, matched)
        return Selection(self.get(fallback) if fallback else None, True, ())
