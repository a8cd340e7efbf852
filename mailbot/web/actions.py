"""What an agent can do to a draft from the page, as plain synchronous calls on the store.

Every form carries the draft's ``version`` and ``seen`` (the newest audit event the person
had on screen). The store refuses a change to a draft that moved on since (optimistic
locking); this module turns that refusal into a sentence ("bob approved it at 10:02; it is
now sent"), except in one case: when everything that happened in between was a macro
re-rendering the text or an assignment, a person's own text is saved anyway. A person's
words win over a machine's; another person's decision is never overwritten.

Roles are checked by the routes (``security.requires``); these functions trust their caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from mailbot.config import Settings
from mailbot.errors import ConcurrentUpdateError, DraftStateError, MailbotError, NotFoundError
from mailbot.models import DraftState
from mailbot.store import Draft, EmptyDraftError, Store
from mailbot.store.accounts import User
from mailbot.web.careful import needs_a_careful_read
from mailbot.web.macros import Macros, RenderError

S = DraftState
MAX_BODY = 100_000
MAX_SUBJECT = 500
MAX_REASON = 2_000
# Changes made while someone was typing that do not overrule their text.
_MACHINE_ACTIONS = frozenset({"rerendered", "assigned", "unassigned"})


class Refused(MailbotError):
    """The action was not carried out; ``message`` is for the person, ``status`` for HTTP."""

    def __init__(self, message: str, status: int = 409) -> None:
        self.message = message
        self.status = status
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Done:
    draft: Draft
    message: str
    send: bool = False              # the sender should run now


@dataclass(frozen=True, slots=True)
class BulkResult:
    approved: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Seen:
    """What the person had on screen when they pressed the button."""

    version: int
    event: int                      # newest audit event id shown; 0 if unknown


class DraftActions:
    def __init__(self, store: Store, settings: Settings, macros: Macros,
                 local_time: Callable[[datetime], str]) -> None:
        self._store = store
        self._settings = settings
        self._macros = macros
        self._time = local_time

    # ------------------------------------------------------------ sending

    def approve(self, draft_id: int, user: User, seen: Seen, *, subject: str | None = None,
                body: str | None = None) -> Done:
        """Approve as shown, or with the person's edits (state ``edited``); then send."""
        draft = self._store.get_draft(draft_id)
        subject, body = _clean_text(subject, body)
        edited = (subject is not None and subject != draft.subject) or (
            body is not None and body != draft.body)
        if not edited:
            try:
                done = self._store.transition(draft_id, S.APPROVED, actor=user.username,
                                              reason="approved in the web page",
                                              expected_version=seen.version)
            except EmptyDraftError as exc:
                raise Refused("This draft has no text yet: write the reply, then approve it.",
                              422) from exc
            except (ConcurrentUpdateError, DraftStateError) as exc:
                raise Refused(self.explain(draft_id, seen, "approve")) from exc
            return Done(done, f"Draft #{draft_id} approved; sending now.", send=True)

        def write(version: int) -> Draft:
            return self._store.transition(draft_id, S.EDITED, actor=user.username,
                                          reason="edited and approved in the web page",
                                          expected_version=version, subject=subject, body=body)
        done = self._keep_person_text(draft_id, seen, write, "send")
        return Done(done, f"Draft #{draft_id} edited and approved; sending now.", send=True)

    def bulk_approve(self, items: Sequence[tuple[int, int]], user: User) -> BulkResult:
        """Approve each ``(draft_id, version)`` as it was listed; one refusal skips one draft."""
        result = BulkResult()
        for draft_id, version in items:
            try:
                careful = needs_a_careful_read(self._store.queue.item(draft_id).mail.analysis)
            except NotFoundError:
                result.skipped.append((draft_id, "does not exist"))
                continue
            if careful:
                result.skipped.append((draft_id, f"needs approving on its own ({careful})"))
                continue
            try:
                self._store.transition(draft_id, S.APPROVED, actor=user.username,
                                       reason="bulk approval in the web page",
                                       expected_version=version)
            except EmptyDraftError:
                result.skipped.append((draft_id, "has no text"))
            except ConcurrentUpdateError:
                result.skipped.append((draft_id, "was changed by someone else since you listed it"))
            except DraftStateError as exc:
                result.skipped.append((draft_id, str(exc)))
            except NotFoundError:
                result.skipped.append((draft_id, "does not exist"))
            else:
                result.approved.append(draft_id)
        return result

    # ------------------------------------------------------------ text

    def save(self, draft_id: int, user: User, seen: Seen, *, subject: str | None,
             body: str | None) -> Done:
        """Keep the person's text without approving it (what agents do; approvers may too)."""
        draft = self._store.get_draft(draft_id)
        subject, body = _clean_text(subject, body)
        if (subject is None or subject == draft.subject) and (body is None or body == draft.body):
            return Done(draft, "Nothing changed.")

        def write(version: int) -> Draft:
            return self._store.queue.revise(draft_id, actor=user.username, action="revised",
                                            expected_version=version, subject=subject, body=body,
                                            reason="text changed in the web page")
        done = self._keep_person_text(draft_id, seen, write, "save")
        note = " It needs approving again." if draft.state in (S.APPROVED, S.EDITED) else ""
        return Done(done, f"Draft #{draft_id} saved.{note}")

    def rerender(self, draft_id: int, user: User, seen: Seen, macro_id: str) -> Done:
        """Replace the text with ``macro_id`` rendered for this mail."""
        draft = self._store.get_draft(draft_id)
        mail = self._store.get_mail(draft.mail_id)
        try:
            rendered = self._macros.render(macro_id, mail, self._settings.mailbox(draft.mailbox))
        except RenderError as exc:
            raise Refused(str(exc), 422) from exc
        try:
            done = self._store.queue.revise(
                draft_id, actor=user.username, action="rerendered", expected_version=seen.version,
                subject=rendered.subject or None, body=rendered.body,
                macro={"macro_id": macro_id, "macro_hash": self._macros.macro_hash(macro_id),
                       # Stored as JSON: dates and other values become their text.
                       "variables": json.loads(json.dumps(rendered.variables, default=str))},
                reason=f"re-rendered with macro {macro_id}", detail={"macro_id": macro_id})
        except (ConcurrentUpdateError, DraftStateError) as exc:
            raise Refused(self.explain(draft_id, seen, "re-render")) from exc
        return Done(done, f"Draft #{draft_id} re-rendered with {macro_id}.")

    # ------------------------------------------------------------ decisions

    def reject(self, draft_id: int, user: User, seen: Seen, reason: str) -> Done:
        reason = _reason(reason, "Say why this mail gets no reply.")
        try:
            done = self._store.transition(draft_id, S.REJECTED, actor=user.username, reason=reason,
                                          expected_version=seen.version)
        except (ConcurrentUpdateError, DraftStateError) as exc:
            raise Refused(self.explain(draft_id, seen, "reject")) from exc
        return Done(done, f"Draft #{draft_id} rejected: no reply will be sent.")

    def escalate(self, draft_id: int, user: User, seen: Seen, reason: str,
                 assignee: str = "") -> Done:
        reason = _reason(reason, "Say why this needs someone else.")
        if assignee:
            self._check_assignee(assignee)
        try:
            done = self._store.transition(draft_id, S.ESCALATED, actor=user.username, reason=reason,
                                          expected_version=seen.version,
                                          detail={"assignee": assignee or None})
        except (ConcurrentUpdateError, DraftStateError) as exc:
            raise Refused(self.explain(draft_id, seen, "escalate")) from exc
        if assignee:
            done = self._store.queue.assign(draft_id, assignee, actor=user.username,
                                            expected_version=done.version, reason=reason)
        return Done(done, f"Draft #{draft_id} escalated" + (f" to {assignee}." if assignee else "."))

    def assign(self, draft_id: int, user: User, seen: Seen, assignee: str) -> Done:
        if assignee:
            self._check_assignee(assignee)
        try:
            done = self._store.queue.assign(draft_id, assignee or None, actor=user.username,
                                            expected_version=seen.version)
        except (ConcurrentUpdateError, DraftStateError) as exc:
            raise Refused(self.explain(draft_id, seen, "assign")) from exc
        return Done(done, f"Draft #{draft_id} assigned to {assignee}." if assignee
                    else f"Draft #{draft_id} unassigned.")

    # ------------------------------------------------------------ conflicts

    def explain(self, draft_id: int, seen: Seen, what: str) -> str:
        """Why ``what`` could not be done: who did what since the person loaded the page."""
        draft = self._store.get_draft(draft_id)
        events = [e for e in self._store.audit_for_draft(draft_id) if e.id > seen.event]
        done = "; ".join(
            f"{e.actor} {e.action.replace('-', ' ')} it at {self._time(e.at)}"
            + (f" ({e.reason})" if e.reason and e.action in ("rejected", "escalated") else "")
            for e in events[-3:]
        )
        said = f"Could not {what} draft #{draft_id}: "
        said += (f"{done}. " if done else "someone else changed it since you opened it. ")
        said += f"It is now {draft.state}."
        if draft.state in (S.SENDING, S.SENT):
            said += " The reply was sent once; nothing more was sent."
        return said + " Your change was not applied."

    def _keep_person_text(self, draft_id: int, seen: Seen, write: Callable[[int], Draft],
                          what: str) -> Draft:
        """``write(version)``; if the draft changed meanwhile only by machines, write again
        on top of their change (the person's text wins); otherwise refuse and say why."""
        try:
            return write(seen.version)
        except EmptyDraftError as exc:
            raise Refused("The reply has no text: write it first.", 422) from exc
        except DraftStateError as exc:
            raise Refused(self.explain(draft_id, seen, what)) from exc
        except ConcurrentUpdateError as exc:
            current = self._store.get_draft(draft_id)
            between = [e for e in self._store.audit_for_draft(draft_id) if e.id > seen.event]
            if not seen.event or not between or any(e.action not in _MACHINE_ACTIONS for e in between):
                raise Refused(self.explain(draft_id, seen, what)) from exc
            try:
                return write(current.version)
            except (ConcurrentUpdateError, DraftStateError) as again:
                raise Refused(self.explain(draft_id, seen, what)) from again

    def _check_assignee(self, username: str) -> None:
        try:
            user = self._store.accounts.get_user(username)
        except NotFoundError as exc:
            raise Refused(f"There is no user {username!r}.", 422) from exc
        if not user.active:
            raise Refused(f"{username} is disabled.", 422)


def _clean_text(subject: str | None, body: str | None) -> tuple[str | None, str | None]:
    """Normalise line ends (browsers send CRLF) and enforce sizes."""
    if subject is not None:
        subject = " ".join(subject.split())
        if not subject:
            raise Refused("The subject cannot be empty.", 422)
        if len(subject) > MAX_SUBJECT:
            raise Refused(f"The subject is longer than {MAX_SUBJECT} characters.", 422)
    if body is not None:
        body = body.replace("\r\n", "\n").replace("\r", "\n")
        if len(body) > MAX_BODY:
            raise Refused(f"The reply is longer than {MAX_BODY} characters.", 422)
    return subject, body


def _reason(reason: str, missing: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise Refused(missing, 422)
    return reason[:MAX_REASON]
