"""kill -9 of the real daemon at random moments while it works through a backlog of 1,000 mails.

Two thirds of the mails are answered automatically by the seed macros and policy (praise,
plain questions, calm cancellations), one third becomes a draft for an agent (defects,
returns). The daemon is killed at least 20 times: sometimes while it starts, mostly while it
records mail and sends replies. After every kill the store and aiosmtpd are checked for a
broken promise; at the end every mail has exactly one outcome, every automatic reply was
received exactly once and every draft waits for an agent.

The kill moments come from a seeded RNG; the seed is printed (and in the figures), and
``MAILBOT_FAULT_SEED=<seed>`` draws the same schedule again. (The daemon's own timing still
varies from run to run, so a replay hits similar, not identical, moments.)

The relay files a copy of every accepted reply in Sent, as Gmail and Microsoft 365 do. A kill
that lands after the relay accepted a reply but before the daemon recorded it as sent is then
resolved by the Sent-folder check instead of a second reply; such kills are counted
(``kills_in_window``). Against a relay that keeps no copy that window cannot be closed by any
client: see test_smtp_faults.py, which kills the daemon exactly there, both ways.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, defaultdict

import pytest

from mailbot.models import DraftState, MailOutcome
from tests.faults.conftest import MakeRig
from tests.faults.rig import SEED_ENV, Figures, Tally, append_all, backlog, flagged

SCENARIO = "kill9"
pytestmark = pytest.mark.slow

TOTAL = 1000
KILLS = 22                 # the issue asks for at least 20
EARLY_KILLS = 0.15         # share of kills during start-up (imports, model, migrations, login)


def test_kill_9_at_random_moments_loses_nothing_and_replies_once(make_rig: MakeRig,
                                                                   figures: Figures) -> None:
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**31))
    print(f"\nkill -9 schedule seed: {seed} (replay: {SEED_ENV}={seed})")
    rng = random.Random(seed)
    rig = make_rig(relay_files_copy=True)
    mails = backlog(TOTAL)
    automatic = sum(m.kind.automatic for m in mails)
    append_all(rig.dovecot, mails)
    figures.set(kind="kill9", seed=seed, mails_in=TOTAL, relay_files_sent_copy=True, faults_injected=0,
                faults_survived=0, kills_early=0, kills_mid_send=0, kills_in_window=0)

    def progress() -> int:
        return rig.recorded() + len(rig.smtpd.received)

    # Spread the kills over the whole backlog, the sending of the last replies included: each
    # kill waits for a random share of the work left (mails to record plus replies to send,
    # shared out among the kills still to come and the final run), then a random moment more,
    # so it lands anywhere in the pipeline. Work, not time, decides: recording and sending
    # run at different speeds, and a time-based schedule ran out of backlog before the end.
    in_window: set[str] = set()
    for kill in range(1, KILLS + 1):
        proc = rig.start()
        if rng.random() < EARLY_KILLS:
            # The moment is the fault being injected, not a wait for a condition.
            time.sleep(rng.uniform(0.2, 4.5))
            figures.add("kills_early")
        else:
            done = progress()
            left = (TOTAL - rig.recorded()) + (automatic - len(rig.smtpd.received))
            target = done + max(1, round(rng.uniform(0.1, 1.8) * left / (KILLS - kill + 2)))

            def reached(target: int = target) -> bool:
                return progress() >= target

            rig.wait_until(f"{target - done} more mails or replies before kill {kill}", reached,
                           120, interval=0.01)
            time.sleep(rng.uniform(0.0, 0.15))
        rig.kill(proc)
        figures.add("faults_injected")

        tally = rig.tally()
        problems = tally.problems(mails)
        assert not problems, f"after kill {kill} (seed {seed}): {problems[:10]}\n{rig.logs()}"
        # Replies the killed daemon had taken to send and not finished; those the relay already
        # has are the window between "the relay has it" and "the daemon knows".
        received = {r.message_id for r in tally.received}
        sending = [d for d in tally.drafts if d.state is DraftState.SENDING
                   and (d.claimed_by or "").endswith(f":{proc.pid}")]
        if sending:
            figures.add("kills_mid_send")
        window = {d.message_id for d in sending if d.message_id in received}
        if window:
            figures.add("kills_in_window")
            in_window |= window
        assert tally.unfinished(mails), (
            f"the backlog was done after only {kill} of {KILLS} kills (seed {seed}): "
            "the kills no longer hit a working daemon")
        figures.add("faults_survived")   # confirmed below: the next start must go on from here
        print(f"kill {kill:2}: recorded {tally.recorded:4}, replies {len(tally.received):3}, "
              f"mid-send {len(sending)}, in window {len(window)}")

    started = time.monotonic()
    proc = rig.start()
    tally = rig.wait_done(mails, timeout=240)
    figures.set(final_run_seconds=round(time.monotonic() - started, 1))
    # Nothing left half done: every original flagged as handled (\Seen) and, when its reply
    # went out, \Answered (those of replies recovered as sent are filed at the end of a round).
    automatic_ids = {tally.mail_ids[d.mail_id] for d in tally.drafts if d.auto}
    rig.wait_until("every answered original flagged \\Answered",
                   lambda: automatic_ids <= flagged(rig.dovecot, b"\\Answered"), 60, 1.0)
    assert len(flagged(rig.dovecot, b"\\Seen")) == TOTAL, "originals never flagged as handled"
    assert rig.stop(proc) == 0, rig.logs()
    tally = rig.tally()   # once more with the daemon stopped: nothing changed on the way out
    _assert_exactly_once(tally, mails_total=TOTAL, seed=seed, figures=figures)
    # The kills that hit the window were resolved by the Sent-folder check, not a resend.
    sent_ids = {d.message_id for d in tally.drafts if d.state is DraftState.SENT}
    assert in_window <= sent_ids
    figures.set(window_resolved_by_sent_check=len(in_window))


def _assert_exactly_once(tally: Tally, *, mails_total: int, seed: int, figures: Figures) -> None:
    mails = backlog(mails_total)
    problems = tally.problems(mails) + tally.unfinished(mails)
    assert not problems, f"seed {seed}: {problems[:10]}"
    outcomes = tally.outcome_counts()
    states = tally.state_counts()
    figures.set(outcomes_recorded=tally.recorded, mails_lost=mails_total - len(tally.outcomes),
                duplicate_replies=tally.duplicate_replies(), replies_received=len(tally.received),
                auto_replies=outcomes["auto_reply"], drafts_pending=states["pending"])
    assert tally.recorded == len(tally.outcomes) == mails_total
    assert set(outcomes) == {"auto_reply", "drafted"}, outcomes
    # Every automatic reply exactly once (by its deterministic Message-ID), each to its mail.
    assert len(tally.received) == outcomes["auto_reply"] == states["sent"]
    assert tally.duplicate_replies() == 0
    by_reply = {d.message_id: d.in_reply_to for d in tally.drafts}
    assert all(by_reply[r.message_id] == r.in_reply_to for r in tally.received)
    # No draft lost: one pending draft per drafted mail.
    assert states["pending"] == outcomes["drafted"]
    # A crash must not change a decision: every mail of one kind got the same outcome, and the
    # mix is real (the seed macros answer two thirds on their own).
    per_kind: dict[str, Counter[str]] = defaultdict(Counter)
    kind_of = {m.message_id: m.kind.name for m in mails}
    for mid, outs in tally.outcomes.items():
        per_kind[kind_of[mid]][outs[0].value] += 1
    mixed = {kind: dict(c) for kind, c in per_kind.items() if len(c) > 1}
    assert not mixed, f"mails of one kind handled differently: {mixed}"
    assert outcomes[MailOutcome.AUTO_REPLY.value] >= mails_total // 3, outcomes
    assert outcomes[MailOutcome.DRAFTED.value] >= mails_total // 5, outcomes
    print(f"final: {dict(outcomes)}, drafts {dict(states)}, replies {len(tally.received)}")
