"""The web page's window on the macro engine (``mailbot.respond``, the App's ``decider``).

The page needs three things from it: the macros to choose from, a fresh rendering of one
macro for a stored mail, and the lint status of the loaded macros and policy. When the
App has no decider, or one without these methods, every use says so plainly ("macro engine
not configured") instead of failing: the rest of the page works without macros.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from mailbot.config import Mailbox
from mailbot.errors import MailbotError
from mailbot.models import Analysis, CleanText, InboundMail, RenderedDraft
from mailbot.store import Mail
from mailbot.text.clean import clean
from mailbot.text.mime import parse

log = logging.getLogger(__name__)

NOT_CONFIGURED = "macro engine not configured"


@runtime_checkable
class MacroEngine(Protocol):
    def macros(self) -> Sequence[tuple[str, str]]: ...

    def render(self, macro_id: str, mail: InboundMail, cleaned: CleanText, analysis: Analysis, *,
               mailbox: Mailbox) -> RenderedDraft: ...

    def status(self) -> Any: ...


class RenderError(MailbotError):
    """A macro could not be rendered for this mail; the message says why, for the agent."""


@dataclass(frozen=True, slots=True)
class LintProblem:
    severity: str                   # "error" | "warning"
    message: str
    file: str = ""
    line: int | None = None


@dataclass(frozen=True, slots=True)
class EngineStatus:
    configured: bool
    summary: str
    problems: tuple[LintProblem, ...] = ()
    macros: tuple[tuple[str, str], ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


class Macros:
    """Adapter over whatever ``app.decider`` is."""

    def __init__(self, decider: object | None) -> None:
        self._engine = decider if isinstance(decider, MacroEngine) else None

    @property
    def configured(self) -> bool:
        return self._engine is not None

    def choices(self) -> list[tuple[str, str]]:
        """``[(macro_id, description)]``, or ``[]`` without an engine or when it fails."""
        if self._engine is None:
            return []
        try:
            return [(str(mid), str(desc)) for mid, desc in self._engine.macros()]
        except Exception as exc:  # the engine is another team's code: the page must still load
            log.warning("listing macros failed: %s", exc)
            return []

    def macro_hash(self, macro_id: str) -> str | None:
        """The version hash of a macro, when the engine tells (``Responder.macro_hash``)."""
        lookup = getattr(self._engine, "macro_hash", None)
        if lookup is None:
            return None
        try:
            return str(lookup(macro_id))
        except Exception:  # an unknown id was already refused by render()
            return None

    def render(self, macro_id: str, mail: Mail, mailbox: Mailbox) -> RenderedDraft:
        """Render ``macro_id`` for the stored ``mail``; ``RenderError`` says why not."""
        if self._engine is None:
            raise RenderError(NOT_CONFIGURED)
        if macro_id not in {mid for mid, _ in self.choices()}:
            raise RenderError(f"no macro {macro_id!r}")
        if mail.raw is None:
            raise RenderError("the original mail was purged by retention; write the reply by hand")
        inbound = parse(mail.raw)
        analysis = analysis_from_dict(mail.analysis)
        if analysis is None:
            raise RenderError("this mail has no analysis to render a macro with")
        try:
            return self._engine.render(macro_id, inbound, clean(inbound.text), analysis,
                                       mailbox=mailbox)
        except Exception as exc:  # template errors of every kind, reported to the agent
            log.warning("rendering macro %s for mail %s failed: %s", macro_id, mail.id, exc)
            raise RenderError(f"macro {macro_id!r} could not be rendered: {exc}") from exc

    def status(self) -> EngineStatus:
        if self._engine is None:
            return EngineStatus(False, NOT_CONFIGURED)
        try:
            raw = self._engine.status()
        except Exception as exc:
            return EngineStatus(True, f"status unavailable: {exc}", macros=tuple(self.choices()))
        return _engine_status(raw, tuple(self.choices()))


MAX_SHOWN_FILE = 200_000


def source_files(status: EngineStatus) -> tuple[str, dict[str, str]]:
    """The policy file's text and each macro's YAML (by id, from ``<macros_dir>/<id>.yaml``)
    for the admins' read-only view; what cannot be read is left out."""
    def read(path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")[:MAX_SHOWN_FILE]
        except (OSError, UnicodeDecodeError):
            return None

    policy = status.details.get("policy_file")
    policy_text = read(Path(str(policy))) if policy else None
    folder = status.details.get("macros_dir")
    macros: dict[str, str] = {}
    if folder:
        for macro_id, _ in status.macros:
            text = read(Path(str(folder)) / f"{macro_id}.yaml")
            if text is not None:
                macros[macro_id] = text
    return policy_text or "", macros


def analysis_from_dict(data: dict[str, Any] | None) -> Analysis | None:
    """The stored analysis JSON back into an ``Analysis``; None when absent or malformed."""
    if not data:
        return None
    try:
        return Analysis(
            language=str(data["language"]), category=str(data["category"]),
            category_scores=dict(data.get("category_scores") or {}), tone=str(data["tone"]),
            tone_scores=dict(data.get("tone_scores") or {}),
            signals=tuple(data.get("signals") or ()), entities=dict(data.get("entities") or {}),
            explanation=list(data.get("explanation") or []),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _engine_status(raw: Any, macros: tuple[tuple[str, str], ...]) -> EngineStatus:
    """Read the engine's status object leniently: attributes or mapping keys ``errors``,
    ``warnings`` (items with message/file/line), anything else shown as details."""
    def get(obj: Any, key: str, default: Any = None) -> Any:
        if isinstance(obj, dict):
            return obj.get(key, default)
        return getattr(obj, key, default)

    problems: list[LintProblem] = []
    for severity in ("errors", "warnings"):
        for item in get(raw, severity, ()) or ():
            if isinstance(item, str):
                problems.append(LintProblem(severity[:-1], item))
                continue
            line, key = get(item, "line"), get(item, "key")
            message = str(get(item, "message", item))
            problems.append(LintProblem(
                severity[:-1], f"{key}: {message}" if key else message, str(get(item, "file", "") or ""),
                int(line) if isinstance(line, int) else None))
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    summary = "OK" if not problems else f"{errors} error(s), {warnings} warning(s)"
    if get(raw, "loaded_at", "unknown") is None:
        summary = f"no valid macro set is loaded ({summary}); every mail goes to an agent"
    elif errors:
        summary += "; the files on disk are not in use, the last good set is"
    details: dict[str, Any] = {}
    for key in ("macros_dir", "policy_file", "loaded_at", "checked_at", "macro_count"):
        value = get(raw, key)
        if value is not None:
            details[key] = value
    return EngineStatus(True, summary, tuple(problems), macros, details)
