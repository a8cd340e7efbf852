"""One mail against one macro set: choose the macro, apply the policy, render the draft.

Pure over its inputs (the set, the mail, the analysis, the time): no I/O, no clock, no
state, so the golden tests, ``mailbot respond`` and the daemon all get the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailbot.errors import RenderError
from mailbot.mail.compose import header_text, reply_subject
from mailbot.models import Action, Analysis, CleanText, Decision, InboundMail, RenderedDraft
from mailbot.respond.catalog import MacroSet
from mailbot.respond.macros import Macro
from mailbot.respond.policy import evaluate
from mailbot.respond.render import render, tidy
from mailbot.respond.variables import template_variables


@dataclass(frozen=True, slots=True)
class Signature:
    """Who the replies are from: the company (name, phone, website, contact_person) and the
    signing agent."""

    company: Mapping[str, str]
    agent: str


@dataclass(frozen=True)
class Rendering:
    """What rendering produced; a part that failed is None and ``error`` says why."""

    language: str
    subject: str | None
    body: str | None
    variables: dict[str, Any] = field(default_factory=dict)
    error: RenderError | None = None

    def draft(self, mail: InboundMail) -> RenderedDraft:
        return RenderedDraft(subject=self.subject or reply_subject(mail.subject, self.language),
                             body=self.body or "", variables=self.variables)


def render_language(analysis: Analysis, macro: Macro) -> str:
    """The mail's language when the macro has it; else English, else what the macro has."""
    available = macro.languages()
    if analysis.language in available:
        return analysis.language
    return "en" if "en" in available or not available else available[0]


def try_render(macro: Macro, mail: InboundMail, cleaned: CleanText, analysis: Analysis, *,
               signature: Signature, language: str | None = None) -> Rendering:
    lang = language or render_language(analysis, macro)
    offer = macro.spec.do.offer.model_dump() if macro.spec.do.offer is not None else None
    context = template_variables(mail, cleaned, analysis, language=lang, company=signature.company,
                                 agent=signature.agent, offer=offer)
    variables = {k: context[k] for k in sorted(macro.variables.get(lang, ())) if k in context}
    if (lang, "body") not in macro.templates:
        problem = f"the macro has no {lang} variant"
        failed = RenderError(problem, macro_id=macro.id, file=macro.file, line=macro.lines.get("templates"))
        return Rendering(lang, None, None, variables, failed)
    subject = body = None
    failure: RenderError | None = None
    try:
        subject = header_text(tidy(render(macro.templates[(lang, "subject")], context, macro_id=macro.id,
                                          macro_file=macro.file, origins=macro.origins), one_line=True))
    except RenderError as exc:
        failure = exc
    try:
        body = tidy(render(macro.templates[(lang, "body")], context, macro_id=macro.id,
                           macro_file=macro.file, origins=macro.origins))
    except RenderError as exc:
        failure = failure or exc
    return Rendering(lang, subject, body, variables, failure)


def decide(macro_set: MacroSet, mail: InboundMail, cleaned: CleanText, analysis: Analysis, *,
           signature: Signature, auto_allowed: bool, now: datetime) -> Decision:
    selection = macro_set.select(analysis)
    macro = selection.macro
    outcome = evaluate(macro_set.policy, analysis, macro, auto_allowed=auto_allowed, now=now)
    action, rule = outcome.action, outcome.rule
    reasons = [selection.describe(), outcome.reason]
    if macro is None:
        if action is Action.SEND:
            action, rule = Action.DRAFT, f"{rule} -> guard.no_macro"
        return Decision(action, rule, "; ".join(reasons))
    tags = macro.spec.do.tags
    if action is Action.IGNORE:
        return Decision(action, rule, "; ".join(reasons), macro.id, macro.hash, None, tags)
    if not macro.templates:  # an escalate-only macro: the person writes the reply
        if action is Action.SEND:
            action, rule = Action.DRAFT, f"{rule} -> guard.no_template"
        return Decision(action, rule, "; ".join(reasons), macro.id, macro.hash, None, tags)
    rendering = try_render(macro, mail, cleaned, analysis, signature=signature)
    if rendering.error is not None:
        if action is Action.SEND:
            action = Action.DRAFT
        rule = f"{rule} -> guard.render_error"
        reasons.append(f"{rendering.error}; the draft waits for an agent and is never sent as it is")
    elif not (rendering.body or "").strip() and action is Action.SEND:
        action, rule = Action.DRAFT, f"{rule} -> guard.empty_body"
        reasons.append("the rendered body is empty")
    return Decision(action, rule, "; ".join(reasons), macro.id, macro.hash, rendering.draft(mail), tags)
