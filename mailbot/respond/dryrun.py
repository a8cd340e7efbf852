"""The pipeline without a mailbox or a store: for ``mailbot respond``, ``macros preview`` and
the golden tests.

It calls the same stages as ``mailbot.pipeline.Processor`` -- ``text.mime.parse``,
``text.clean.clean``, ``text.screen.screen``, the analyzer, the engine -- in the same order
with the same arguments; only the per-sender count is 0, because there is no store to ask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from mailbot.config import Mailbox, MaildirSource, OutboxTransport
from mailbot.errors import DataError
from mailbot.mail.compose import header_text
from mailbot.models import Action, Analysis, CleanText, Decision, InboundMail, SkipReason, Verdict
from mailbot.nlp.analyzer import MailText
from mailbot.pipeline import Analyzer
from mailbot.respond import engine
from mailbot.respond.catalog import MacroSet
from mailbot.text.clean import clean
from mailbot.text.mime import parse
from mailbot.text.screen import screen

# A JSON line without "from" still needs a sender to pass screening ("no sender" is skipped).
PLACEHOLDER_SENDER = "customer@example.invalid"


@dataclass(frozen=True, slots=True)
class Prepared:
    mail: InboundMail
    cleaned: CleanText
    verdict: Verdict

    def mail_text(self) -> MailText:
        """What the analyzer reads, exactly as the Processor hands it over."""
        return MailText(self.mail.subject, self.mail.text, self.mail.from_name, self.cleaned.sign_off_name)


def dry_run_mailbox(address: str = "support@example.com") -> Mailbox:
    """A mailbox for screening when no configuration names one."""
    return Mailbox(name="dry-run", address=address,
                   source=MaildirSource(kind="maildir", path=Path(".")),
                   transport=OutboxTransport(kind="outbox", path=Path(".")))


def mail_bytes(subject: str, body: str, sender: str | None = None) -> bytes:
    """An RFC 5322 message from the JSON-lines fields, so it goes through the real parser."""
    message = EmailMessage(policy=email_policy.default)
    try:
        message["From"] = header_text(sender) if sender else PLACEHOLDER_SENDER
        message["Subject"] = header_text(subject)
        message.set_content(body)
    except (ValueError, TypeError) as exc:
        raise DataError(f"cannot build a mail from it: {exc}", field="from") from exc
    return message.as_bytes()


def prepare(data: bytes, mailbox: Mailbox, *, replies_last_day: int = 0, daily_limit: int = 3) -> Prepared:
    mail = parse(data)
    cleaned = clean(mail.text)
    verdict = screen(mail, own_addresses=mailbox.own_addresses, own_domains=(mailbox.domain,),
                     auto_replies_last_day=replies_last_day, daily_limit=daily_limit)
    return Prepared(mail, cleaned, verdict)


def analyse_all(analyzer: Analyzer, items: Sequence[Prepared]) -> list[Analysis]:
    """In one batch when the analyzer can (``mailbot.nlp.analyzer.Analyzer.analyse_many``)."""
    many = getattr(analyzer, "analyse_many", None)
    if many is not None:
        return list(many([item.mail_text() for item in items]))
    return [analyzer.analyse(i.mail.subject, i.mail.text, from_name=i.mail.from_name,
                             sign_off_name=i.cleaned.sign_off_name) for i in items]


def decide(macro_set: MacroSet, item: Prepared, analysis: Analysis, *, signature: engine.Signature,
           now: datetime, auto_allowed: bool = True) -> Decision:
    """As the Processor does: screened-out mail gets no reply (here: ``ignore`` with the
    screening reason as the rule); over the sender limit, only automatic replies stop."""
    verdict = item.verdict
    if not verdict.proceed and verdict.reason is not SkipReason.SENDER_LIMIT:
        return Decision(Action.IGNORE, f"screen.{verdict.reason}", verdict.detail)
    return engine.decide(macro_set, item.mail, item.cleaned, analysis, signature=signature,
                         auto_allowed=auto_allowed and verdict.proceed, now=now)


def respond_record(analysis: Analysis, decision: Decision) -> dict[str, Any]:
    """One ``mailbot respond`` output line: the analysis as ``classify`` prints it, plus the
    decision."""
    draft = decision.draft
    return {
        **analysis.to_dict(),
        "macro": decision.macro_id,
        "action": decision.action.value,
        "rule": decision.rule,
        "reason": decision.reason,
        "draft": {"subject": draft.subject, "body": draft.body} if draft is not None else None,
    }
