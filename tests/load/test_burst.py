"""A burst of 1,000 mails through the real pipeline (``benchmarks/load_burst.py``, which runs
``mailbot run --once`` on a Maildir and measures it): nothing lost or recorded twice, memory
bounded, and the per-sender limit holds. The 10,000-mail run of the same script is in
docs/reliability.md (scripts/reliability_report.py); this smaller one keeps CI fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.models import DraftState, MailOutcome
from mailbot.store import Store

ROOT = Path(__file__).resolve().parents[2]
MAILS = 1000
SAME_SENDER = 50
LIMIT = 3
HOT_SENDER = "fan@example.nl"
# The shipped model alone is ~200 MB resident (README: peak ~230 MB while classifying).
PEAK_RSS_MB = 450
# After the first tenth of the burst everything is loaded; a leak of even 10 KB per mail
# would add 90 MB over the remaining 900 mails.
GROWTH_MB = 60


@pytest.mark.slow
def test_a_burst_is_worked_through_with_bounded_memory_and_the_sender_limit_holds(tmp_path: Path) -> None:
    work = tmp_path / "burst"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "load_burst.py"), "--mails", str(MAILS),
         "--same-sender", str(SAME_SENDER), "--limit", str(LIMIT), "--json", "--keep", str(work)],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.stdout.strip(), done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exit_code"] == 0, (work / "run.log").read_text()[-3000:]
    assert result["recorded"] == MAILS and result["lost"] == 0 and result["recorded_twice"] == 0
    assert result["peak_rss_mb"] < PEAK_RSS_MB, result
    assert result["rss_after_warmup_mb"] > 0 and result["rss_growth_after_warmup_mb"] < GROWTH_MB, result
    # The limit: no address got more than LIMIT automatic replies, and the sender who wrote
    # 50 times got exactly LIMIT (so it is the limit that stopped the rest, not the policy).
    assert result["replies_per_sender_max"] <= LIMIT
    assert result["hot_sender_mails"] == SAME_SENDER and result["hot_sender_auto_replies"] == LIMIT
    assert result["outcomes"].get("auto_reply", 0) > 100, result["outcomes"]   # sends really happened
    assert done.returncode == 0

    # The rest of that sender's mail still reached a person, with the reason.
    store = Store.open(f"sqlite:///{work / 'mailbot.db'}")
    try:
        hot = [m for m in store.list_mails(limit=10 * MAILS) if m.from_addr == HOT_SENDER]
        drafts = [d for d in store.list_drafts(limit=10 * MAILS) if d.to_addr == HOT_SENDER]
    finally:
        store.close()
    assert len(hot) == SAME_SENDER
    assert sum(m.outcome is MailOutcome.AUTO_REPLY for m in hot) == LIMIT
    held = [m for m in hot if m.outcome is not MailOutcome.AUTO_REPLY]
    assert held and all("sender_limit" in m.reason for m in held), {m.reason for m in held}
    assert sum(d.state is DraftState.SENT for d in drafts) == LIMIT
    assert sum(d.state is DraftState.PENDING for d in drafts) == SAME_SENDER - LIMIT
