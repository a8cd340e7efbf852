"""Small builders for the store tests: mails, drafts, and drafts driven into a given state."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from mailbot.models import DraftState, MailOutcome
from mailbot.store import Draft, NewDraft, NewMail, RecordResult, Store

_counter = itertools.count(1)
S = DraftState


def new_mail(n: int | None = None, *, mailbox: str = "INBOX", uidvalidity: int = 7,
             message_id: str | None = "", raw: bytes | None = None,
             from_addr: str = "klant@example.nl") -> NewMail:
    """Mail number ``n`` (unique by default); ``message_id=""`` means "<n@example.nl>"."""
    n = next(_counter) if n is None else n
    return NewMail(
        mailbox=mailbox,
        source_key=f"{uidvalidity}:{n}",
        uidvalidity=uidvalidity,
        uid=n,
        message_id=f"m{n}@example.nl" if message_id == "" else message_id,
        from_addr=from_addr,
        from_name="Klant",
        subject=f"Bestelling {n}",
        size=100 + n,
        raw=raw if raw is not None else f"Subject: Bestelling {n}\r\n\r\nHallo".encode(),
        text="Hallo",
        received_at=datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
    )


def new_draft(*, to_addr: str = "klant@example.nl", body: str = "Beste klant, ...",
              auto: bool = False, not_before: datetime | None = None) -> NewDraft:
    n = next(_counter)
    return NewDraft(
        to_addr=to_addr, to_name="Klant", subject="Re: Bestelling", body=body,
        message_id=f"<reply-{n}@mailbot.example>", in_reply_to="m1@example.nl",
        references=("m0@example.nl", "m1@example.nl"), language="nl", macro_id="refund_late",
        macro_hash="abc123", rule="refund.default", variables={"order": "12345"},
        explanation=["category refund 0.93"], auto=auto, not_before=not_before,
    )


def record_draft(store: Store, *, auto: bool = False, body: str = "Beste klant, ...",
                 to_addr: str = "klant@example.nl", mailbox: str = "INBOX") -> RecordResult:
    """Record a fresh mail with a draft (pending, or approved when ``auto``)."""
    outcome = MailOutcome.AUTO_REPLY if auto else MailOutcome.DRAFTED
    return store.record_mail(new_mail(mailbox=mailbox), outcome=outcome, reason="test",
                             draft=new_draft(auto=auto, body=body, to_addr=to_addr))


# How to reach each state from pending, one transition at a time.
_PATHS: dict[DraftState, tuple[DraftState, ...]] = {
    S.PENDING: (),
    S.APPROVED: (S.APPROVED,),
    S.EDITED: (S.EDITED,),
    S.ESCALATED: (S.ESCALATED,),
    S.REJECTED: (S.REJECTED,),
    S.SENDING: (S.APPROVED, S.SENDING),
    S.SENT: (S.APPROVED, S.SENDING, S.SENT),
    S.FAILED: (S.APPROVED, S.SENDING, S.FAILED),
}


def draft_in(store: Store, state: DraftState) -> Draft:
    """A new draft, moved into ``state`` through allowed transitions."""
    result = record_draft(store)
    assert result.draft is not None
    draft = result.draft
    for step in _PATHS[state]:
        draft = move(store, draft.id, step)
    assert draft.state is state
    return draft


def move(store: Store, draft_id: int, to_state: DraftState, actor: str = "agent") -> Draft:
    """``store.transition`` with the arguments each target state needs."""
    body = "Beste klant, aangepast." if to_state is S.EDITED else None
    return store.transition(draft_id, to_state, actor=actor, reason=f"to {to_state}",
                            body=body)
