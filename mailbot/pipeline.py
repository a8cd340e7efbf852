"""One inbound mail in, one recorded outcome out: parse, clean, screen, analyse, decide, store.

Everything here is synchronous and does no network I/O: the source hands in a ``RawMail``, and
the store call at the end writes the mail, its outcome, the draft, the audit events and the
checkpoint in one transaction. Sending happens later, in ``mailbot.sending``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from mailbot.config import Mailbox, Settings
from mailbot.errors import StoreError
from mailbot.mail.compose import make_message_id, reply_subject
from mailbot.models import (
    Action,
    Analysis,
    CleanText,
    Decision,
    InboundMail,
    MailOutcome,
    RawMail,
    SkipReason,
)
from mailbot.store import NewDraft, NewMail, RecordResult, Store, dedupe_key_for
from mailbot.text.clean import clean
from mailbot.text.mime import parse
from mailbot.text.screen import screen

log = logging.getLogger(__name__)


class Analyzer(Protocol):
    """Understands a mail (mailbot.nlp). Must not raise for any text."""

    def analyse(self, subject: str, body: str, *, from_name: str = "",
                sign_off_name: str | None = None) -> Analysis: ...


class Decider(Protocol):
    """Picks the macro and the action from the policy (mailbot.respond)."""

    def decide(self, mail: InboundMail, cleaned: CleanText, analysis: Analysis, *,
               mailbox: Mailbox, auto_allowed: bool, now: datetime) -> Decision: ...


@dataclass(frozen=True, slots=True)
class Processed:
    """What happened to one mail; ``result`` is the store's record."""

    outcome: MailOutcome
    reason: str
    result: RecordResult


class Processor:
    """Turns RawMail into a recorded outcome for one mailbox.

    ``analyzer`` and ``decider`` are optional: without them every mail that passes screening
    is queued for an agent with an empty draft ("needs an agent").
    """

    def __init__(self, settings: Settings, mailbox: Mailbox, store: Store, *,
                 analyzer: Analyzer | None = None, decider: Decider | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._settings = settings
        self._mailbox = mailbox
        self._store = store
        self._analyzer = analyzer
        self._decider = decider
        self._clock = clock

    def process(self, raw: RawMail) -> Processed:
        """Record ``raw`` with exactly one outcome. Raises only StoreError (the caller retries)."""
        try:
            return self._process(raw)
        except StoreError:
            raise
        except Exception as exc:  # a bug in a stage must not lose the mail: keep raw, say why
            log.exception("mailbox %s: processing %s failed", raw.mailbox, raw.source_key)
            return self._record_failure(raw, f"internal error while processing: {exc!r}")

    # ------------------------------------------------------------------ stages

    def _process(self, raw: RawMail) -> Processed:
        limits = self._settings.limits
        if len(raw.data) > limits.max_mail_bytes:
            return self._record_failure(
                raw, f"mail is {len(raw.data)} bytes, over limits.max_mail_bytes "
                     f"({limits.max_mail_bytes}); kept for an agent, not analysed",
                outcome=MailOutcome.NEEDS_AGENT,
            )
        mail = parse(raw.data)
        cleaned = clean(mail.text)
        now = self._clock()
        replies = 0
        if mail.from_addr:
            replies = self._store.auto_replies_since(
                self._mailbox.name, mail.from_addr, now - timedelta(days=1))
        verdict = screen(
            mail,
            own_addresses=self._mailbox.own_addresses,
            own_domains=(self._mailbox.domain,),
            auto_replies_last_day=replies,
            daily_limit=limits.replies_per_sender_per_day,
        )
        new_mail = self._new_mail(raw, mail, cleaned.body)
        checkpoint = (raw.uidvalidity, raw.uid)
        # Over the per-sender limit the mail still reaches a person; only automatic replies stop.
        auto_allowed = verdict.proceed
        if not verdict.proceed and verdict.reason is not SkipReason.SENDER_LIMIT:
            reason = f"{verdict.reason}: {verdict.detail}"
            result = self._store.record_mail(new_mail, outcome=MailOutcome.SKIPPED, reason=reason,
                                             checkpoint=checkpoint)
            return _processed(result)
        limit_note = "" if verdict.proceed else f"; {verdict.reason}: {verdict.detail}"

        analysis = None
        if self._analyzer is not None:
            analysis = self._analyzer.analyse(mail.subject, mail.text, from_name=mail.from_name,
                                              sign_off_name=cleaned.sign_off_name)
        if analysis is None or self._decider is None:
            # No macros and policy yet: a person writes the reply, with the analysis at hand.
            reason = "needs an agent: no macros and policy are enabled"
            if analysis is None:
                reason = "needs an agent: automatic analysis is not enabled"
            else:
                reason += (f" (analysis: {analysis.language}, {analysis.category}, {analysis.tone}"
                           f"{', ' + ', '.join(analysis.signals) if analysis.signals else ''})")
            reason += limit_note  # the stored reason and the returned one are the same text
            draft = self._draft(mail, raw, subject=None, body="",
                                language=analysis.language if analysis else None, auto=False,
                                explanation=analysis.explanation if analysis else None)
            result = self._store.record_mail(new_mail, outcome=MailOutcome.NEEDS_AGENT,
                                             reason=reason,
                                             analysis=analysis.to_dict() if analysis else None,
                                             draft=draft, checkpoint=checkpoint)
            return _processed(result)

        decision = self._decider.decide(mail, cleaned, analysis, mailbox=self._mailbox,
                                        auto_allowed=auto_allowed, now=now)
        return self._record_decision(raw, mail, new_mail, analysis, decision, checkpoint, limit_note)

    def _record_decision(self, raw: RawMail, mail: InboundMail, new_mail: NewMail, analysis: Analysis,
                         decision: Decision, checkpoint: tuple[int | None, int | None],
                         limit_note: str) -> Processed:
        outcome = {
            Action.SEND: MailOutcome.AUTO_REPLY,
            Action.DRAFT: MailOutcome.DRAFTED,
            Action.ESCALATE: MailOutcome.ESCALATED,
            Action.IGNORE: MailOutcome.IGNORED,
        }[decision.action]
        draft = None
        if decision.action is not Action.IGNORE:
            rendered = decision.draft
            draft = self._draft(
                mail, raw,
                subject=rendered.subject if rendered else None,
                body=rendered.body if rendered else "",
                language=analysis.language,
                auto=decision.action is Action.SEND,
                macro_id=decision.macro_id, macro_hash=decision.macro_hash, rule=decision.rule,
                variables=rendered.variables if rendered else {},
                explanation=analysis.explanation,
            )
        reason = f"{decision.rule}: {decision.reason}{limit_note}"
        result = self._store.record_mail(
            new_mail, outcome=outcome, reason=reason, analysis=analysis.to_dict(),
            decision={"action": decision.action.value, "rule": decision.rule, "reason": decision.reason,
                      "macro_id": decision.macro_id, "macro_hash": decision.macro_hash,
                      "tags": list(decision.tags)},
            draft=draft, checkpoint=checkpoint,
        )
        return _processed(result)

    # ------------------------------------------------------------------ helpers

    def _new_mail(self, raw: RawMail, mail: InboundMail | None, text: str | None) -> NewMail:
        return NewMail(
            mailbox=raw.mailbox,
            source_key=raw.source_key,
            uidvalidity=raw.uidvalidity,
            uid=raw.uid,
            message_id=mail.message_id if mail else None,
            from_addr=mail.from_addr if mail else "",
            from_name=mail.from_name if mail else "",
            subject=mail.subject if mail else "",
            received_at=_utc(raw.received_at) or self._clock(),
            size=len(raw.data),
            raw=raw.data,
            text=text,
        )

    def _draft(self, mail: InboundMail, raw: RawMail, *, subject: str | None, body: str,
               language: str | None, auto: bool, macro_id: str | None = None,
               macro_hash: str | None = None, rule: str | None = None,
               variables: dict[str, Any] | None = None,
               explanation: list[str] | None = None) -> NewDraft | None:
        to_addr = _reply_address(mail)
        if not to_addr:
            return None
        lang = language if language in ("nl", "en") else "en"
        references = [*mail.references, *([mail.message_id] if mail.message_id else [])]
        return NewDraft(
            to_addr=to_addr,
            to_name=mail.from_name,
            subject=subject or reply_subject(mail.subject, lang),
            body=body,
            in_reply_to=mail.message_id,
            references=tuple(references[-20:]),
            message_id=make_message_id(self._mailbox.name,
                                       dedupe_key_for(mail.message_id, raw.data), self._mailbox.domain),
            language=lang,
            auto=auto,
            macro_id=macro_id,
            macro_hash=macro_hash,
            rule=rule,
            variables=variables or {},
            explanation=explanation or [],
        )

    def _record_failure(self, raw: RawMail, reason: str, *,
                        outcome: MailOutcome = MailOutcome.FAILED) -> Processed:
        mail: InboundMail | None
        try:
            mail = parse(raw.data[: 256 * 1024])  # headers for the agent's list, cheaply
        except Exception:  # parse is total; this is belt and braces for the failure path only
            mail = None
        new_mail = self._new_mail(raw, mail, None)
        result = self._store.record_mail(new_mail, outcome=outcome, reason=reason,
                                         checkpoint=(raw.uidvalidity, raw.uid))
        return _processed(result)


def _processed(result: RecordResult) -> Processed:
    """What the store recorded is what happened: a copy of a mail handled before is recorded
    as a duplicate (and a source key recorded before keeps its first outcome), whatever this
    pass decided, so the outcome and reason are taken from the record."""
    return Processed(result.mail.outcome, result.mail.reason, result)


def _reply_address(mail: InboundMail) -> str:
    """Where a reply goes: Reply-To if it is a plain address, else From."""
    reply_to = (mail.reply_to or "").strip().lower()
    if reply_to and "@" in reply_to and not any(c in reply_to for c in "\r\n,;<> "):
        return reply_to
    return mail.from_addr


def _utc(when: datetime | None) -> datetime | None:
    """Sources may hand naive datetimes (imaplib INTERNALDATE); the store wants UTC."""
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
