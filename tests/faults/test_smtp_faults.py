"""The SMTP relay in trouble: 421/451 (retried with backoff), 550 (failed with the relay's reason,
no retry storm), a connection dropped mid-DATA, and a kill -9 at the worst possible moment.

The daemon reaches aiosmtpd through an ``SmtpTap`` that counts connections: mailbot opens one
per send attempt, so the tap's count is the number of attempts as the network saw them.

"Dropped mid-DATA" comes in two kinds, and only one of them can be made safe by a client:

- the relay drops the connection before it took the message: sent again, once;
- the relay took the message but its answer never arrived. The daemon cannot tell this
  apart from the first kind. If the relay filed a copy in Sent (Gmail and Microsoft 365 do
  for submitted mail), the daemon finds the deterministic Message-ID there and records the
  reply as sent without sending it again. If the relay keeps no copy, nothing anywhere says
  the reply went out, and the daemon sends it again rather than lose it: the customer gets
  two copies with the same Message-ID (which their mail store may fold into one). The
  ``known_limit`` tests pin that behaviour down; they are not counted as duplicates.
"""

from __future__ import annotations

from collections import Counter

import pytest

from mailbot.errors import StoreError
from mailbot.models import DraftState
from mailbot.store import Draft
from tests.faults.conftest import MakeRig
from tests.faults.rig import (
    CustomerMail,
    Figures,
    Rig,
    append_all,
    customer_mail,
    flagged,
    message_ids,
)

SCENARIO = "smtp"
pytestmark = pytest.mark.slow

# Mails the seed macros answer on their own: praise (0), a plain question (1), a calm
# cancellation (3), praise in English (4). (Mail 2 is a defect: a draft for an agent.)
AUTOMATIC = (0, 1, 3, 4)


def _automatic(*numbers: int) -> list[CustomerMail]:
    mails = [customer_mail(n) for n in numbers]
    assert all(m.kind.automatic for m in mails)
    return mails


def _draft(rig: Rig, mail: CustomerMail) -> Draft:
    [draft] = [d for d in rig.store().list_drafts(limit=1000)
               if (d.in_reply_to or "").strip("<>") == mail.message_id]
    return draft


def _wait_state(rig: Rig, mail: CustomerMail, state: DraftState, timeout: float = 60.0) -> Draft:
    def reached() -> bool:
        try:
            return _draft(rig, mail).state is state
        except (ValueError, StoreError):   # not recorded yet, or no schema yet
            return False
    rig.wait_until(f"the reply to {mail.message_id} to be {state.value}", reached, timeout, 0.1)
    return _draft(rig, mail)


def _copies(rig: Rig, mail: CustomerMail) -> int:
    """How often aiosmtpd received the reply to ``mail``."""
    return Counter(r.in_reply_to for r in rig.tally().received)[mail.message_id]


def _figures(figures: Figures, rig: Rig, mails: list[CustomerMail], *, injected: int,
             expected_copies: int = 1) -> None:
    """Record the figures; ``expected_copies=2`` for the known limit, whose second copy is
    what the test pins down: counted as a duplicate, but the fault counts as survived (the
    script keeps these figures apart from the totals)."""
    tally = rig.tally()
    copies = Counter(r.message_id for r in tally.received)
    known = {f"reply {mid} received {n} times" for mid, n in copies.items() if n <= expected_copies}
    problems = [p for p in tally.problems(mails) if p not in known]
    figures.set(faults_injected=injected, faults_survived=0 if problems else injected,
                mails_in=len(mails), outcomes_recorded=tally.recorded,
                mails_lost=len(mails) - len(tally.outcomes),
                duplicate_replies=tally.duplicate_replies(),
                replies_received=len(tally.received),
                smtp_connections=rig.tap.connections if rig.tap else None)


def test_421_and_451_are_retried_with_backoff_and_sent_once(make_rig: MakeRig,
                                                             figures: Figures) -> None:
    figures.set(kind="smtp_4xx")
    rig = make_rig(via_tap=True)
    assert rig.tap is not None
    [mail] = _automatic(0)
    rig.smtpd.fail_next(421, "4.3.2 Service shutting down, try again later", at="MAIL")
    rig.smtpd.fail_next(451, "4.3.0 Temporary local problem, try again later", at="DATA")
    append_all(rig.dovecot, [mail])
    proc = rig.start()

    [received] = rig.smtpd.wait_for(1, timeout=90)
    draft = _wait_state(rig, mail, DraftState.SENT)
    assert rig.stop(proc) == 0
    # Three connections: 421 at MAIL FROM, 451 after the data, then accepted.
    assert rig.tap.connections == 3
    assert draft.attempts == 2 and _copies(rig, mail) == 1
    assert b"Message-ID: <" + draft.message_id.strip("<>").encode() in received.content
    retries = [e for e in rig.store().audit_for_draft(draft.id) if e.action == "retry-scheduled"]
    assert [(e.detail or {}).get("smtp_code") for e in retries] == [421, 451]
    # Backoff: the second attempt waited at least backoff_initial (0.3 s), the third at least
    # twice that (the sender's next round comes later still; it must never come sooner).
    first, second, third = rig.tap.opened_at
    assert second - first >= 0.3 and third - second >= 0.6, rig.tap.opened_at
    _figures(figures, rig, [mail], injected=2)


def test_550_fails_with_the_relays_reason_and_is_not_retried(make_rig: MakeRig,
                                                             figures: Figures) -> None:
    figures.set(kind="smtp_5xx")
    rig = make_rig(via_tap=True)
    assert rig.tap is not None
    refused_rcpt, refused_data, fine, later = _automatic(0, 1, 3, 4)
    rig.smtpd.fail_next(550, "5.1.1 <klant0@customers.example>: mailbox unavailable", at="RCPT")
    rig.smtpd.fail_next(550, "5.7.1 Message rejected as spam", at="DATA")
    append_all(rig.dovecot, [refused_rcpt, refused_data, fine])
    proc = rig.start()

    rig.smtpd.wait_for(1, timeout=90)
    a = _wait_state(rig, refused_rcpt, DraftState.FAILED)
    b = _wait_state(rig, refused_data, DraftState.FAILED)
    _wait_state(rig, fine, DraftState.SENT)
    assert a.smtp_code == 550 and "5.1.1 <klant0@customers.example>: mailbox unavailable" in (
        a.last_error or "")
    assert b.smtp_code == 550 and "5.7.1 Message rejected as spam" in (b.last_error or "")
    assert a.attempts == b.attempts == 1
    assert rig.tap.connections == 3
    # No retry storm: a new mail sets off another round of sending; the failed replies stay
    # failed and that round opens exactly one connection, for the new reply.
    append_all(rig.dovecot, [later])
    _wait_state(rig, later, DraftState.SENT)
    assert rig.tap.connections == 4
    assert _draft(rig, refused_rcpt).state is DraftState.FAILED
    assert _draft(rig, refused_data).state is DraftState.FAILED
    assert [r.in_reply_to for r in rig.tally().received] == [fine.message_id, later.message_id]
    assert rig.stop(proc) == 0
    _figures(figures, rig, [refused_rcpt, refused_data, fine, later], injected=2)
    figures.set(failed_with_reason=2)


def test_connection_dropped_before_the_relay_took_the_message(make_rig: MakeRig,
                                                               figures: Figures) -> None:
    figures.set(kind="smtp_drop_before_accept")
    rig = make_rig(via_tap=True)
    assert rig.tap is not None
    [mail] = _automatic(0)
    rig.smtpd.drop_next_data()      # the data arrives, the relay hangs up without taking it
    append_all(rig.dovecot, [mail])
    proc = rig.start()

    rig.smtpd.wait_for(1, timeout=90)
    draft = _wait_state(rig, mail, DraftState.SENT)
    assert rig.stop(proc) == 0
    assert rig.tap.connections == 2 and draft.attempts == 1 and _copies(rig, mail) == 1
    assert message_ids(rig.dovecot, "Sent")[draft.message_id.strip("<>")] == 1
    _figures(figures, rig, [mail], injected=1)


def test_answer_to_data_lost_but_copy_in_sent_is_not_sent_again(make_rig: MakeRig,
                                                                figures: Figures) -> None:
    figures.set(kind="smtp_drop_after_accept_copy_in_sent")
    rig = make_rig(relay_files_copy=True)
    assert rig.tap is not None
    [mail] = _automatic(0)
    rig.tap.lose_answer_to_data()   # the relay has it and filed it in Sent; the 250 is lost
    append_all(rig.dovecot, [mail])
    proc = rig.start()

    draft = _wait_state(rig, mail, DraftState.SENT, timeout=90)
    _wait_answered(rig, mail)
    assert rig.stop(proc) == 0
    # One connection: the retry found the Message-ID in Sent and sent nothing.
    assert rig.tap.connections == 1 and _copies(rig, mail) == 1
    assert draft.attempts == 1
    # The relay's copy is the only one in Sent (the daemon filed none of its own).
    assert message_ids(rig.dovecot, "Sent")[draft.message_id.strip("<>")] == 1
    _figures(figures, rig, [mail], injected=1)


@pytest.mark.parametrize("relay_files_copy", [True, False], ids=["relay-files-copy", "plain-relay"])
def test_kill_9_after_the_relay_took_the_reply(make_rig: MakeRig, figures: Figures,
                                               relay_files_copy: bool) -> None:
    """The worst moment for a crash: the relay has the reply, the daemon does not know yet."""
    figures.set(kind="smtp_kill_in_window_" + ("copy_in_sent" if relay_files_copy else "plain_relay"))
    rig = make_rig(via_tap=True, relay_files_copy=relay_files_copy)
    assert rig.tap is not None
    [mail] = _automatic(0)
    rig.tap.hold_answer_to_data()
    append_all(rig.dovecot, [mail])
    proc = rig.start()
    assert rig.tap.held.wait(90), f"the reply never reached the relay\n{rig.logs()}"
    rig.kill(proc)
    assert _copies(rig, mail) == 1
    assert _draft(rig, mail).state is DraftState.SENDING

    proc = rig.start()
    _wait_state(rig, mail, DraftState.SENT, timeout=90)
    _wait_answered(rig, mail)
    assert rig.stop(proc) == 0
    if relay_files_copy:
        # Recovery found the copy: recorded as sent, nothing sent again.
        assert rig.tap.connections == 1 and _copies(rig, mail) == 1
        _figures(figures, rig, [mail], injected=1)
    else:
        # Nothing says it went out: sent again rather than lost (see the module docstring).
        assert rig.tap.connections == 2 and _copies(rig, mail) == 2
        _figures(figures, rig, [mail], injected=1, expected_copies=2)
        figures.set(known_limit=True, copies_received=2)


def test_known_limit_answer_lost_and_no_copy_in_sent_is_sent_again(make_rig: MakeRig,
                                                                   figures: Figures) -> None:
    figures.set(kind="smtp_drop_after_accept_plain_relay")
    rig = make_rig(via_tap=True)
    assert rig.tap is not None
    [mail] = _automatic(0)
    rig.tap.lose_answer_to_data()   # the relay has it, keeps no copy; the 250 is lost
    append_all(rig.dovecot, [mail])
    proc = rig.start()

    rig.smtpd.wait_for(2, timeout=90)
    draft = _wait_state(rig, mail, DraftState.SENT)
    assert rig.stop(proc) == 0
    assert rig.tap.connections == 2 and _copies(rig, mail) == 2
    assert len({r.message_id for r in rig.tally().received}) == 1   # the same Message-ID twice
    assert draft.attempts == 1
    _figures(figures, rig, [mail], injected=1, expected_copies=2)
    figures.set(known_limit=True, copies_received=2)


def _wait_answered(rig: Rig, mail: CustomerMail) -> None:
    rig.wait_until(f"{mail.message_id} flagged \\Answered",
                   lambda: mail.message_id in flagged(rig.dovecot, b"\\Answered"), 30, 0.2)
