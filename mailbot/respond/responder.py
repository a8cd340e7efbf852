"""``Responder``: the macro engine as the rest of mailbot sees it.

It is the pipeline's ``Decider`` (``decide``), and what the web app uses to list macros,
render one for a mail on an agent's request, and show whether the files on disk are good
(``macros``, ``render``, ``status``). It owns a ``Reloader``: every public call first checks
(at most every 2 seconds, cheaply: a stat per file) whether the files changed, and the daemon
also calls ``check_reload`` every 2 seconds from its scheduler, so an edit is live within
about 2 seconds in every process without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailbot.config import Company, Mailbox, Settings
from mailbot.errors import MacroError
from mailbot.models import Action, Analysis, CleanText, Decision, InboundMail, RenderedDraft
from mailbot.respond import engine
from mailbot.respond.catalog import MacroSet
from mailbot.respond.findings import Finding
from mailbot.respond.reload import Reloader

log = logging.getLogger(__name__)

RELOAD_INTERVAL = 2.0


@dataclass(frozen=True)
class MacroStatus:
    """The lint status of the macro files, for admins (web app, logs).

    ``errors`` and ``warnings`` are those of the latest check of the files. When ``errors`` is
    not empty, the files on disk are *not* in use: the set loaded at ``loaded_at`` is (or none,
    when ``loaded_at`` is None, and then every mail goes to an agent).
    """

    macros_dir: str
    policy_file: str
    loaded_at: datetime | None          # when the set in use was loaded
    checked_at: datetime | None         # when the files were last read and linted
    macro_count: int                    # macros in the set in use
    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.errors and self.loaded_at is not None

    def to_dict(self) -> dict[str, object]:
        return {
            "macros_dir": self.macros_dir, "policy_file": self.policy_file,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "macro_count": self.macro_count, "ok": self.ok,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
        }


class Responder:
    """Thread-safe; create one per process (``build_responder`` or ``App.from_config``)."""

    def __init__(self, macros_dir: Path, policy_file: Path, *, company: Mapping[str, str] | Company,
                 agent: str = "", reload_interval: float = RELOAD_INTERVAL,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        company_map = dict(company.model_dump() if isinstance(company, Company) else company)
        self._signature = engine.Signature(company_map, agent or company_map.get("contact_person", ""))
        self._reloader = Reloader(macros_dir, policy_file, min_interval=reload_interval, clock=clock)
        self._reloader.check()

    @classmethod
    def from_settings(cls, settings: Settings) -> Responder:
        return cls(settings.respond.macros, settings.respond.policy, company=settings.company,
                   agent=settings.respond.agent)

    # ------------------------------------------------------------------ the pipeline's Decider

    def decide(self, mail: InboundMail, cleaned: CleanText, analysis: Analysis, *,
               mailbox: Mailbox, auto_allowed: bool, now: datetime) -> Decision:
        """The macro, action and rendered draft for one mail. Never raises for a bad macro
        or template: those become a draft for an agent with the reason."""
        current = self._current()
        if current is None:
            first = self._reloader.state.errors[:1]
            detail = f": {first[0]}" if first else ""
            return Decision(Action.DRAFT, "no_macro_set",
                            f"needs an agent: no valid macro set is loaded{detail}")
        return engine.decide(current, mail, cleaned, analysis, signature=self._signature,
                             auto_allowed=auto_allowed, now=now)

    # ------------------------------------------------------------------ for the web app

    def macros(self) -> list[tuple[str, str]]:
        """``[(id, description), ...]`` of the set in use, sorted by id; [] when none is loaded."""
        current = self._current()
        return sorted((m.id, m.description) for m in current.macros) if current else []

    def macro_hash(self, macro_id: str) -> str:
        """The version hash of a macro in the set in use. Raises UnknownMacroError."""
        return self._require().get(macro_id).hash

    def render(self, macro_id: str, mail: InboundMail, cleaned: CleanText, analysis: Analysis, *,
               mailbox: Mailbox | None = None, agent: str | None = None,
               language: str | None = None) -> RenderedDraft:
        """Render macro ``macro_id`` for this mail, e.g. when an agent picks another macro.

        ``agent`` signs instead of the configured agent; ``language`` ("nl" | "en") overrides
        the mail's. Raises UnknownMacroError (also a LookupError) for an unknown id,
        RenderError when the template fails for this mail (the message names file, line
        and variable), MacroError when no valid macro set is loaded.
        """
        macro = self._require().get(macro_id)
        signature = self._signature if agent is None else engine.Signature(self._signature.company, agent)
        rendering = engine.try_render(macro, mail, cleaned, analysis, signature=signature,
                                      language=language)
        if rendering.error is not None:
            raise rendering.error
        return rendering.draft(mail)

    def status(self) -> MacroStatus:
        self._reloader.maybe_check()
        state = self._reloader.state
        active = state.active
        return MacroStatus(
            macros_dir=str(self._reloader.macros_dir), policy_file=str(self._reloader.policy_file),
            loaded_at=active.loaded_at if active else None, checked_at=state.checked_at,
            macro_count=len(active.macros) if active else 0,
            errors=state.errors, warnings=state.warnings,
        )

    # ------------------------------------------------------------------ reload

    def check_reload(self) -> bool:
        """Reload now if a file changed (the daemon's scheduler calls this every 2 s).
        True when a new set was swapped in."""
        return self._reloader.check()

    def current_set(self) -> MacroSet | None:
        """The set in use (for the golden runner and previews)."""
        return self._current()

    def _current(self) -> MacroSet | None:
        self._reloader.maybe_check()
        return self._reloader.state.active

    def _require(self) -> MacroSet:
        current = self._current()
        if current is None:
            errors = self._reloader.state.errors
            raise MacroError("no valid macro set is loaded" + (f": {errors[0]}" if errors else ""),
                             file=str(self._reloader.macros_dir))
        return current


def build_responder(settings: Settings) -> Responder | None:
    """The Responder for ``settings``, or None when macros are switched off or the macros
    folder does not exist (then every mail goes to an agent, as before macros existed)."""
    if not settings.respond.enabled:
        return None
    if not settings.respond.macros.is_dir():
        log.warning("macros: %s does not exist; every mail that passes screening goes to an agent",
                    settings.respond.macros)
        return None
    return Responder.from_settings(settings)
