"""dovecot stopped and started again under a running daemon: during IDLE and during a FETCH.

While dovecot is down, new mail is delivered straight into the Maildir (as the MTA's local
delivery goes on without the IMAP server); after it is back, more mail is APPENDed. The
daemon must notice the drop, keep trying while the server is down, reconnect on its own and
then handle every mail exactly once: nothing missed, nothing twice, no reply lost.

The daemon reaches dovecot through an ``ImapTap``, which reports the moment dovecot starts
answering a command (IDLE, or a FETCH of message bodies): that is when dovecot is stopped.
"""

from __future__ import annotations

import re
import time

import pytest

from mailbot.models import DraftState
from tests.faults.conftest import MakeRig
from tests.faults.rig import (
    CustomerMail,
    Figures,
    Rig,
    append_all,
    backlog,
    deliver_to_maildir,
    flagged,
    message_ids,
)

SCENARIO = "imap_restart"
pytestmark = pytest.mark.slow

# The worker's log line for the drop, and for a reconnect attempt while dovecot is down.
DROPPED_IN = "mailbox 'support': {doing}: "
REFUSED = re.compile(r"mailbox 'support': connecting: .*; reconnecting in")


def _outage(rig: Rig, *, command: bytes, while_down: list[CustomerMail], figures: Figures) -> str:
    """Stop dovecot as soon as it starts answering the daemon's next ``command``, deliver
    ``while_down`` into the Maildir, wait until the daemon failed to reconnect at least once,
    start dovecot again. Returns the daemon log written from the stop on."""
    assert rig.imap_tap is not None
    answering = rig.imap_tap.answering(command)
    assert answering.wait(60), f"the daemon sent no {command!r} within 60 s\n{rig.logs()}"
    mark = len(rig.log_text())
    stopped = time.monotonic()
    rig.dovecot.stop()
    figures.add("faults_injected")
    deliver_to_maildir(rig.dovecot, while_down)
    rig.wait_until("a failed reconnect while dovecot is down",
                   lambda: REFUSED.search(rig.log_text()[mark:]) is not None, 30)
    rig.dovecot.start()
    figures.set(down_seconds=round(time.monotonic() - stopped, 1))
    return rig.log_text()[mark:]


def _assert_all_handled_once(rig: Rig, mails: list[CustomerMail], figures: Figures) -> None:
    tally = rig.wait_done(mails, timeout=120)
    problems = tally.problems(mails)
    assert not problems, problems
    assert tally.recorded == len(mails)
    outcomes = tally.outcome_counts()
    assert set(outcomes) <= {"auto_reply", "drafted"}, outcomes
    assert len(tally.received) == outcomes["auto_reply"] == tally.state_counts()["sent"]
    # Every reply filed in Sent once and every original flagged, though the IMAP server was
    # gone for a while in the middle (the copies of replies sent meanwhile are filed later).
    sent_ids = {d.message_id for d in tally.drafts if d.state is DraftState.SENT}
    in_sent = message_ids(rig.dovecot, "Sent")
    assert {mid for mid, n in in_sent.items() if n == 1} == sent_ids, in_sent
    answered = flagged(rig.dovecot, b"\\Answered")
    assert answered == {tally.mail_ids[d.mail_id] for d in tally.drafts if d.state is DraftState.SENT}
    figures.set(mails_in=len(mails), outcomes_recorded=tally.recorded,
                mails_lost=len(mails) - len(tally.outcomes), duplicate_replies=tally.duplicate_replies(),
                replies_received=len(tally.received))


def test_dovecot_restart_during_idle(make_rig: MakeRig, figures: Figures) -> None:
    figures.set(kind="imap_restart_idle")
    rig = make_rig(imap_tap=True)
    before, down, after = backlog(3), backlog(4, start=3), backlog(3, start=7)
    append_all(rig.dovecot, before)
    proc = rig.start()
    rig.wait_done(before, timeout=60)

    log = _outage(rig, command=b" IDLE\r\n", while_down=down, figures=figures)
    assert DROPPED_IN.format(doing="waiting for new mail") in log, log[-3000:]
    append_all(rig.dovecot, after)

    _assert_all_handled_once(rig, before + down + after, figures)
    assert proc.poll() is None, "the daemon died instead of reconnecting"
    assert rig.stop(proc) == 0
    figures.set(faults_survived=1)


def test_dovecot_restart_during_a_fetch(make_rig: MakeRig, figures: Figures) -> None:
    # Mails with a 1 MB photo: a FETCH of 20 of them takes a few hundred milliseconds, so
    # dovecot goes away in the middle of the transfer, not between two commands.
    figures.set(kind="imap_restart_fetch")
    rig = make_rig(imap_tap=True)
    before = backlog(40, attachment=1_000_000)
    down, after = backlog(3, start=40), backlog(3, start=43)
    append_all(rig.dovecot, before)
    proc = rig.start()
    # The first FETCH comes at once; wait for the first mail to be recorded so the drop hits
    # a FETCH in the middle of the backlog.
    rig.wait_until("the first mail recorded", lambda: rig.recorded() > 0, 60)

    log = _outage(rig, command=b"BODY.PEEK[]", while_down=down, figures=figures)
    assert DROPPED_IN.format(doing="fetching 20 messages") in log, log[-3000:]
    append_all(rig.dovecot, after)

    _assert_all_handled_once(rig, before + down + after, figures)
    assert proc.poll() is None, "the daemon died instead of reconnecting"
    assert rig.stop(proc) == 0
    figures.set(faults_survived=1)
