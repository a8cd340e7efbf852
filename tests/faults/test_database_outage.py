"""The database briefly unavailable under a running daemon: the daemon waits and goes on.

- PostgreSQL (the throwaway cluster) is stopped and started again twice: once while mail is
  being recorded, once while replies are being sent. Every pooled connection dies with it.
- SQLite is locked by another connection (``BEGIN EXCLUSIVE``) for a few seconds, twice at
  the same two moments. While the lock is held the daemon cannot record anything (checked),
  afterwards it goes on.

Each time: every mail exactly one outcome, every automatic reply received exactly once, no
draft lost, and the daemon never exits.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.conftest import MakeRig
from tests.faults.rig import CustomerMail, Figures, Rig, append_all, backlog, sqlite_write_lock
from tests.support.postgres import PostgresCluster

SCENARIO = "database"
pytestmark = pytest.mark.slow

BACKLOG = 150
LOCK_SECONDS = 4.0          # how long SQLite stays locked
OUTAGE_SECONDS = 3.0        # how long PostgreSQL stays down


def _while_recording(rig: Rig) -> None:
    rig.wait_until("recording under way", lambda: rig.recorded() >= 20, 90)


def _while_sending(rig: Rig) -> None:
    sent = rig.sent()
    rig.wait_until("sending under way", lambda: rig.sent() >= sent + 5, 90)


def _assert_all_once(rig: Rig, mails: list[CustomerMail], figures: Figures) -> None:
    tally = rig.wait_done(mails, timeout=180)
    assert not tally.problems(mails), tally.problems(mails)
    outcomes, states = tally.outcome_counts(), tally.state_counts()
    assert tally.recorded == len(mails)
    assert set(outcomes) == {"auto_reply", "drafted"}, outcomes
    assert len(tally.received) == outcomes["auto_reply"] == states["sent"]
    assert states["pending"] == outcomes["drafted"]
    figures.set(mails_in=len(mails), outcomes_recorded=tally.recorded,
                mails_lost=len(mails) - len(tally.outcomes),
                duplicate_replies=tally.duplicate_replies(), replies_received=len(tally.received))


@pytest.mark.postgres
def test_postgresql_restarted_while_the_daemon_works(make_rig: MakeRig, figures: Figures,
                                                     postgres_cluster: PostgresCluster,
                                                     postgres_fresh_url: str) -> None:
    figures.set(kind="db_postgres_restart")
    rig = make_rig(postgres_fresh_url)
    mails = backlog(BACKLOG)
    append_all(rig.dovecot, mails)
    proc = rig.start()
    downtimes = []
    for moment in (_while_recording, _while_sending):
        moment(rig)
        # The rig's own reads would wait for the database too: only the log is read meanwhile.
        mark = len(rig.log_text())
        stopped = time.monotonic()
        postgres_cluster.stop()
        try:
            figures.add("faults_injected")
            # Down for OUTAGE_SECONDS (the fault), and the daemon must have run into it and
            # be waiting, not gone.
            while time.monotonic() - stopped < OUTAGE_SECONDS:
                assert proc.poll() is None, f"the daemon exited\n{rig.logs()}"
                time.sleep(0.1)
            assert "database unavailable" in rig.log_text()[mark:], rig.logs()
        finally:
            postgres_cluster.start()    # the cluster serves the rest of the session too
        downtimes.append(round(time.monotonic() - stopped, 1))
        assert proc.poll() is None, f"the daemon exited\n{rig.logs()}"
        figures.add("faults_survived")
    _assert_all_once(rig, mails, figures)
    assert proc.poll() is None
    assert rig.stop(proc) == 0
    figures.set(down_seconds=downtimes)


def test_sqlite_locked_by_another_connection(make_rig: MakeRig, figures: Figures,
                                             tmp_path: Path) -> None:
    figures.set(kind="db_sqlite_lock")
    rig = make_rig()
    mails = backlog(BACKLOG)
    append_all(rig.dovecot, mails)
    proc = rig.start()
    held = []
    for moment in (_while_recording, _while_sending):
        moment(rig)
        with sqlite_write_lock(tmp_path / "mailbot.db"):
            figures.add("faults_injected")
            taken = time.monotonic()
            frozen = (rig.recorded(), rig.sent())
            # WAL: the test can still read while it holds the write lock; the daemon can read
            # too, but it cannot record a mail or a sent reply until the lock is gone.
            while time.monotonic() - taken < LOCK_SECONDS:
                assert (rig.recorded(), rig.sent()) == frozen, "the daemon wrote through the lock"
                assert proc.poll() is None, f"the daemon exited\n{rig.logs()}"
                time.sleep(0.1)
        held.append(round(time.monotonic() - taken, 1))
        # And it goes on by itself once the lock is gone.
        def going_on(frozen: tuple[int, int] = frozen) -> bool:
            return (rig.recorded(), rig.sent()) != frozen

        rig.wait_until("progress after the lock", going_on, 60)
        figures.add("faults_survived")
    _assert_all_once(rig, mails, figures)
    assert proc.poll() is None
    assert rig.stop(proc) == 0
    figures.set(lock_seconds=held)
