"""A burst of mail through the real pipeline: throughput, peak memory, outcomes, sender limits.

    .venv/bin/python benchmarks/load_burst.py [--mails 10000] [--same-sender 50] [--json]

Writes ``--mails`` messages into a fresh Maildir (a mix of what a support inbox gets: praise
and plain questions that the policy answers on its own, complaints that wait for an agent,
threats, auto-replies, newsletters, bounces, duplicates, broken MIME, and ``--same-sender``
mails from one address), then runs the real ``mailbot run --once`` as a child process on
it (SQLite store, the shipped model, the repository's macros, the policy without business
hours so automatic replies really go out, replies written to an outbox folder) and samples
the child's resident memory while it works.

Prints mails/s (between the first and the last recorded mail, so model loading is not
counted), peak RSS, the RSS growth after warm-up, outcomes by kind, lost and duplicated
mails, and the most automatic replies any one sender got. ``--json`` prints one JSON object
instead (what ``scripts/reliability_report.py`` and ``tests/load`` read). Exits 1 when a
mail is lost or recorded twice, or a sender got more automatic replies than
``limits.replies_per_sender_per_day``.
"""

from __future__ import annotations

import argparse
import collections
import email
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
HOT_SENDER = "fan@example.nl"       # the one address that writes ``--same-sender`` times
SAMPLE_EVERY = 0.1                  # seconds between memory samples of the child

# (kind, subject, body, language). Kinds are only labels for the summary; what happens to a
# mail is decided by the real pipeline. Texts are short and plain, as most support mail is.
TEMPLATES: tuple[tuple[str, str, str], ...] = (
    ("praise", "Bedankt!", "Hallo,\n\nDank jullie wel voor de snelle levering en de vriendelijke hulp, "
     "echt geweldige service!\n\nGroet,\n{name}"),
    ("praise", "Thanks a lot", "Hi,\n\nThank you so much for the quick delivery, the chair is lovely. "
     "Great service!\n\nBest,\n{name}"),
    ("question", "Vraag over levering", "Hallo,\n\nLeveren jullie ook in Belgie, en wat kost de "
     "verzending daarheen?\n\nGroet,\n{name}"),
    ("question", "Question about sizes", "Hello,\n\nDo you have the winter coat in size XL as well? "
     "I could not find it on the website.\n\nThanks,\n{name}"),
    ("status", "Waar blijft bestelling {order}?", "Hallo,\n\nIk heb vorige week bestelling {order} "
     "geplaatst maar nog niets ontvangen. Kunt u kijken waar het pakket is?\n\nGroet,\n{name}"),
    ("defect", "Kapot aangekomen", "Beste,\n\nMijn koffiezetapparaat uit bestelling {order} is kapot "
     "aangekomen. Het lekt en gaat niet meer aan.\n\nMet vriendelijke groet,\n{name}"),
    ("refund", "Refund for order {order}", "Hello,\n\nI returned order {order} two weeks ago and "
     "would like my money back, 49.95 euro.\n\nRegards,\n{name}"),
    ("abusive", "Waardeloos", "Wat een waardeloos kutbedrijf zijn jullie, idioten. Mijn bestelling "
     "{order} is alweer te laat!"),
    ("legal", "Ingebrekestelling {order}", "Geachte heer, mevrouw,\n\nU heeft bestelling {order} nog "
     "steeds niet geleverd. Ik stel u hierbij in gebreke en schakel mijn advocaat in.\n\n{name}"),
)
MACHINE: tuple[tuple[str, dict[str, str], str], ...] = (
    ("out_of_office", {"Auto-Submitted": "auto-replied"}, "Ik ben afwezig tot maandag."),
    ("newsletter", {"List-Id": "<nieuws.example.org>", "Precedence": "bulk"}, "Onze aanbiedingen."),
    ("bounce", {"Return-Path": "<>"}, "Delivery failed."),
)
BROKEN: tuple[bytes, ...] = (
    b"From: a@example.nl\r\nSubject: kapot\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n"
    b"--y\r\nno end",
    b"\xff\xfe\x00garbage\r\n\r\n\x00\x01\x02",
    b"From: =?utf-8?B?////?= <c@example.nl>\r\nSubject: =?x-unknown?Q?caf=C3=A9?=\r\n"
    b"Content-Type: text/plain; charset=zlib\r\n\r\n\x80\x81 kapot\r\n",
)


@dataclass
class Plan:
    """What was written: how many mails, per kind, and from the hot sender."""

    mails: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    hot_sender_mails: int = 0
    duplicates_written: int = 0


def _mail(n: int, *, sender: str, subject: str, body: str, headers: dict[str, str] | None = None,
          message_id: str | None = None) -> bytes:
    lines = [
        f"From: {sender}", "To: Support <support@shop.example>", f"Subject: {subject}",
        f"Date: {format_datetime(_date(n))}",
        f"Message-ID: <{message_id or f'burst-{n}@example.nl'}>",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
        "Content-Type: text/plain; charset=utf-8", "", body, "",
    ]
    return "\r\n".join(lines).encode()


def _date(n: int) -> datetime:
    return datetime(2026, 11, 2, 9, 0, tzinfo=UTC) + timedelta(seconds=n)


def write_burst(inbox: Path, mails: int, *, same_sender: int = 50, seed: int = 6) -> Plan:
    """Deliver ``mails`` messages into the Maildir ``inbox`` (files in new/, as an MTA does).

    About 2% are machine mail, 1% broken MIME, 1% copies of an earlier Message-ID, and
    ``same_sender`` of them praise from HOT_SENDER (each would be answered automatically if
    the per-sender limit did not stop it); the rest are customer mail from ~mails/3 senders.
    """
    rng = random.Random(seed)
    for sub in ("new", "cur", "tmp"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    plan = Plan()
    counts: collections.Counter[str] = collections.Counter()
    hot = set(rng.sample(range(mails), min(same_sender, mails)))
    senders = max(1, mails // 3)
    mtime = time.time() - mails            # distinct, increasing mtimes: delivery order
    for n in range(mails):
        roll = rng.random()
        if n in hot:
            kind = "hot_sender"
            data = _mail(n, sender=f"Fan Tastisch <{HOT_SENDER}>", subject="Bedankt!",
                         body=TEMPLATES[0][2].format(name="Fan", order=""))
        elif roll < 0.02:
            kind, headers, body = rng.choice(MACHINE)
            data = _mail(n, sender=f"robot{n % 7}@example.org", subject="Automatisch antwoord",
                         body=body, headers=headers)
        elif roll < 0.03:
            kind = "broken"
            data = rng.choice(BROKEN) + f"\r\nX-N: {n}\r\n".encode()
        elif roll < 0.04 and n > 10:
            kind = "duplicate"
            plan.duplicates_written += 1
            data = _mail(n, sender="Kopie <kopie@example.nl>", subject="Nogmaals",
                         body="Dit is dezelfde mail nog een keer.",
                         message_id=f"burst-dup-{n % 5}@example.nl")
        else:
            kind, subject, body = rng.choice(TEMPLATES)
            who = rng.randrange(senders)
            order = str(10_000_000 + rng.randrange(90_000_000))
            name = f"Klant {who}"
            data = _mail(n, sender=f"{name} <klant{who}@example.nl>", subject=subject.format(order=order),
                         body=body.format(order=order, name=name))
        counts[kind] += 1
        path = inbox / "new" / f"{1_700_000_000 + n}.M{n}P1.burst"
        path.write_bytes(data)
        os.utime(path, (mtime + n, mtime + n))
    plan.mails = mails
    plan.by_kind = dict(sorted(counts.items()))
    plan.hot_sender_mails = counts["hot_sender"]
    return plan


def write_config(root: Path, *, limit: int) -> Path:
    """SQLite store, Maildir in, outbox out; the shipped policy minus business hours."""
    policy_file = yaml.safe_load((ROOT / "config" / "policy.yaml").read_text(encoding="utf-8"))
    # Automatic sends happen only inside business hours; the burst must send at any hour.
    policy_file.pop("business_hours", None)
    (root / "policy.yaml").write_text(yaml.safe_dump(policy_file, allow_unicode=True), encoding="utf-8")
    config = {
        "database": {"url": f"sqlite:///{root / 'mailbot.db'}"},
        "mailboxes": [{
            "name": "support", "address": "support@shop.example", "display_name": "Shop",
            "source": {"kind": "maildir", "path": str(root / "inbox"), "after": "flag"},
            "transport": {"kind": "outbox", "path": str(root / "outbox")},
        }],
        "respond": {"macros": str(ROOT / "macros"), "policy": str(root / "policy.yaml")},
        "limits": {"replies_per_sender_per_day": limit},
        "company": {"name": "Example Shop", "contact_person": "Sanne de Vries"},
    }
    path = root / "mailbot.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@dataclass
class Result:
    """The figures of one run (see the module docstring)."""

    mails: int
    recorded: int
    lost: int
    recorded_twice: int
    seconds_total: float
    seconds_processing: float
    mails_per_second: float
    peak_rss_mb: float
    rss_after_warmup_mb: float
    rss_growth_after_warmup_mb: float
    outcomes: dict[str, int]
    drafts_by_state: dict[str, int]
    replies_written: int
    replies_per_sender_max: int
    hot_sender_mails: int
    hot_sender_auto_replies: int
    limit: int
    exit_code: int
    plan: dict[str, Any]

    @property
    def ok(self) -> bool:
        return (self.exit_code == 0 and self.lost == 0 and self.recorded_twice == 0
                and self.replies_per_sender_max <= self.limit)


def _count_recorded(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM mails").fetchone()[0])
    except sqlite3.Error:      # not migrated yet, or busy for a moment
        return 0


def run_burst(root: Path, mails: int, *, same_sender: int = 50, limit: int = 3) -> Result:
    """Write the burst under ``root``, run ``mailbot run --once`` on it, and measure."""
    plan = write_burst(root / "inbox", mails, same_sender=same_sender)
    config = write_config(root, limit=limit)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    db = root / "mailbot.db"
    started = time.monotonic()
    with open(root / "run.log", "wb") as log:
        command = [sys.executable, "-m", "mailbot.cli", "--config", str(config), "run", "--once"]
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=root)
        proc = psutil.Process(child.pid)
        peak = warm = 0.0
        next_count = 0.0
        while child.poll() is None:
            try:
                rss = proc.memory_info().rss / 2**20
            except psutil.Error:
                break
            peak = max(peak, rss)
            now = time.monotonic()
            # RSS once a tenth of the burst is in: model loaded, caches warm. Growth after
            # this point is what a leak would show.
            if not warm and now >= next_count:
                next_count = now + 0.5
                if _count_recorded(db) >= max(1, mails // 10):
                    warm = rss
            time.sleep(SAMPLE_EVERY)
        code = child.wait()
    total = time.monotonic() - started
    # The kernel's own high-water mark of the child, which sampling can miss between ticks.
    peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    return _measure(root, plan, mails, limit=limit, code=code, total=total, peak=peak, warm=warm)


def _measure(root: Path, plan: Plan, mails: int, *, limit: int, code: int, total: float,
             peak: float, warm: float) -> Result:
    from mailbot.store import Store

    store = Store.open(f"sqlite:///{root / 'mailbot.db'}")
    try:
        recorded = store.list_mails(limit=10 * mails + 10)
        drafts = store.list_drafts(limit=10 * mails + 10)
    finally:
        store.close()
    keys = collections.Counter(m.source_key for m in recorded)
    on_disk = {p.name.partition(":")[0] for sub in ("new", "cur") for p in (root / "inbox" / sub).iterdir()}
    outcomes = collections.Counter(m.outcome.value for m in recorded)
    states = collections.Counter(d.state.value for d in drafts)
    # What really left: the reply files in the outbox, by recipient.
    per_recipient: collections.Counter[str] = collections.Counter()
    for path in (root / "outbox").glob("*.eml") if (root / "outbox").exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        per_recipient[str(message["To"].addresses[0].addr_spec).lower()] += 1
    times = sorted(m.recorded_at for m in recorded)
    span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else 0.0
    return Result(
        mails=mails, recorded=len(recorded),
        lost=len(on_disk - set(keys)),
        recorded_twice=sum(1 for c in keys.values() if c > 1),
        seconds_total=round(total, 1), seconds_processing=round(span, 1),
        mails_per_second=round((len(recorded) - 1) / span, 1) if span else 0.0,
        peak_rss_mb=round(peak, 1), rss_after_warmup_mb=round(warm, 1),
        rss_growth_after_warmup_mb=round(peak - warm, 1) if warm else 0.0,
        outcomes=dict(sorted(outcomes.items())), drafts_by_state=dict(sorted(states.items())),
        replies_written=sum(per_recipient.values()),
        replies_per_sender_max=max(per_recipient.values(), default=0),
        hot_sender_mails=plan.hot_sender_mails,
        hot_sender_auto_replies=per_recipient[HOT_SENDER],
        limit=limit, exit_code=code, plan=asdict(plan),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=10_000)
    parser.add_argument("--same-sender", type=int, default=50)
    parser.add_argument("--limit", type=int, default=3, help="limits.replies_per_sender_per_day")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--keep", type=Path, help="work in this (empty) folder and keep it")
    args = parser.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="mailbot-burst-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        result = run_burst(root, args.mails, same_sender=args.same_sender, limit=args.limit)
        if result.exit_code != 0:
            sys.stderr.write((root / "run.log").read_text(errors="replace")[-3000:])
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps({**asdict(result), "ok": result.ok}))
    else:
        print(f"mails: {result.mails}, recorded: {result.recorded}, lost: {result.lost}, "
              f"recorded twice: {result.recorded_twice}")
        print(f"throughput: {result.mails_per_second:,.1f} mails/s "
              f"({result.seconds_processing} s processing, "
              f"{result.seconds_total} s with start-up and sending)")
        print(f"peak RSS: {result.peak_rss_mb:,.0f} MB (after warm-up {result.rss_after_warmup_mb:,.0f} MB, "
              f"growth {result.rss_growth_after_warmup_mb:,.0f} MB)")
        print("outcomes: " + ", ".join(f"{k} {v}" for k, v in result.outcomes.items()))
        print("drafts: " + ", ".join(f"{k} {v}" for k, v in result.drafts_by_state.items()))
        print(f"automatic replies written: {result.replies_written}; most to one sender: "
              f"{result.replies_per_sender_max} (limit {result.limit}); {HOT_SENDER}: "
              f"{result.hot_sender_auto_replies} for {result.hot_sender_mails} mails")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
