#!/usr/bin/env python3
"""Rerun every reliability check of issue 6 and write docs/reliability.md with its figures.

    .venv/bin/python scripts/reliability_report.py [--mails 10000] [--skip-faults] [--out FILE]

Steps, each a child process on the real parts (nothing is taken from an earlier run):

  1. hostile corpus   pytest tests/hostile (malformed, huge, nested, injected, bombs, and a
                      sample through a real `mailbot run` against dovecot and aiosmtpd)
  2. property test    pytest tests/hostile/test_property.py: generated inputs through parse,
                      clean, screen, analyse and the whole Processor
  3. security         pytest tests/security: secrets, routes and roles, CSRF, throttling,
                      what the store keeps, retention
  4. load             benchmarks/load_burst.py --mails N: a burst through `mailbot run --once`
  5. faults           scripts/reliability_faults.py (kill -9, server restarts, SMTP faults,
                      database outages: tests/faults)

Progress goes to stderr; the figures go to ``--out`` (default docs/reliability.md). Exits 0
when every step passed, no mail was lost and none was recorded or answered twice; 1
otherwise. A step that cannot run (the faults script missing) is reported as not run, never
filled in with numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAULTS_SCRIPT = ROOT / "scripts" / "reliability_faults.py"
_FAULT_LINE = re.compile(r"^faults\.([A-Za-z0-9_.\-]+):\s*(.*)$")


@dataclass
class Step:
    """One child process and what came out of it."""

    name: str
    command: list[str]
    status: int | None = None          # None: not run
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    output: str = ""
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.status == 0

    def verdict(self) -> str:
        if self.status is None:
            return f"not run ({self.note})"
        return "pass" if self.passed else f"FAIL (exit {self.status})"


def _log(text: str) -> None:
    print(f"[reliability] {text}", file=sys.stderr, flush=True)


def run(step: Step, *, env: dict[str, str] | None = None, timeout: float) -> Step:
    _log(f"{step.name}: {' '.join(step.command)}")
    started = time.monotonic()
    try:
        done = subprocess.run(step.command, cwd=ROOT, env={**os.environ, **(env or {})}, text=True,
                              capture_output=True, timeout=timeout, check=False)
        step.status, step.output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        step.status, step.note = 124, f"timed out after {timeout:.0f} s"
        step.output = str(exc.stdout or "") + str(exc.stderr or "")
    step.seconds = time.monotonic() - started
    _log(f"{step.name}: {step.verdict()} in {step.seconds:.0f} s")
    if not step.passed:
        sys.stderr.write(step.output[-4000:] + "\n")
    return step


def junit_counts(path: Path) -> dict[str, int]:
    """tests / passed / failed / skipped from pytest's JUnit XML."""
    counts = {"tests": 0, "failed": 0, "skipped": 0}
    if path.exists():
        for suite in ElementTree.parse(path).getroot().iter("testsuite"):
            counts["tests"] += int(suite.get("tests", 0))
            counts["failed"] += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            counts["skipped"] += int(suite.get("skipped", 0))
    counts["passed"] = counts["tests"] - counts["failed"] - counts["skipped"]
    return counts


def pytest_step(name: str, args: list[str], work: Path, *, env: dict[str, str] | None = None,
                timeout: float = 1800) -> Step:
    junit = work / f"{name.replace(' ', '_')}.xml"
    step = Step(name, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                       *args])
    run(step, env=env, timeout=timeout)
    step.counts = junit_counts(junit)
    if step.counts["tests"] == 0 and step.passed:
        step.status = 5                     # nothing ran: not a pass
    return step


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{platform.system()} {platform.release()} ({platform.machine()}), {os.cpu_count()} CPU cores "
            f"({cpu}){memory}; Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")


def corpus_size() -> tuple[int, dict[str, int], int]:
    """(mails in the hostile corpus, per group, mails in the daemon sample)."""
    sys.path.insert(0, str(ROOT))
    from tests.hostile import corpus
    from tests.hostile.test_daemon import SAMPLE

    groups: dict[str, int] = {}
    for case in corpus.cases():
        groups[case.group] = groups.get(case.group, 0) + 1
    return sum(groups.values()), dict(sorted(groups.items())), len(SAMPLE) + len(corpus.INJECTIONS) + 1


def faults_figures(step: Step) -> dict[str, str]:
    figures: dict[str, str] = {}
    for line in step.output.splitlines():
        match = _FAULT_LINE.match(line.strip())
        if match:
            figures[match.group(1)] = match.group(2)
    return figures


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def render(steps: dict[str, Step], burst: dict[str, Any] | None, faults: dict[str, str],
           tried: dict[str, int], corpus_groups: dict[str, int], sample: int, started: datetime,
           mails: int) -> tuple[str, bool]:
    """The Markdown document and whether everything passed."""
    fault_step = steps["faults"]
    lost_parts, dup_parts = [], []
    lost = dups = 0
    if burst is not None:
        lost += int(burst["lost"])
        dups += int(burst["recorded_twice"])
        lost_parts.append(f"burst: {burst['lost']} of {burst['mails']:,}")
        dup_parts.append(f"burst: {burst['recorded_twice']} mails recorded twice")
    fault_lost, fault_dups = _int(faults.get("mails_lost")), _int(faults.get("duplicate_replies"))
    if fault_lost is not None and fault_dups is not None:
        lost += fault_lost
        dups += fault_dups
        lost_parts.append(f"fault injection: {fault_lost} of {faults.get('mails_in', '?')}")
        dup_parts.append(f"fault injection: {fault_dups} duplicate replies")
    else:
        lost_parts.append("fault injection: no figures (see below)")
        dup_parts.append("fault injection: no figures (see below)")
    # The fault script keeps its "known limit" cases out of its totals: a relay that took a
    # reply and kept no copy, whose answer was lost. Say what they did, next to the total.
    limit_dups = sum(_int(value) or 0 for key, value in faults.items()
                     if key.startswith("known_limit.") and key.endswith(".duplicate_replies"))
    if limit_dups:
        cases = len({key.split(".")[1] for key in faults if key.startswith("known_limit.")})
        dup_parts.append(f"not counted, the known limit: {limit_dups} second copies in {cases} scenarios "
                         "where a relay took a reply, kept no copy in Sent, and its answer was lost "
                         "(`faults.known_limit.*` below)")
    if fault_step.status is None:
        survived = f"not measured: {fault_step.note}"
    elif "survived" in faults:
        survived = (f"{faults['survived']} of {faults.get('injected', '?')} injected "
                    f"({faults.get('tests_passed', '?')} of {faults.get('tests', '?')} fault tests passed)")
    else:
        survived = f"no figures: scripts/reliability_faults.py {fault_step.verdict()}"
    property_total = sum(tried.values())
    ok = (all(s.passed for s in steps.values()) and burst is not None and bool(burst.get("ok"))
          and lost == 0 and dups == 0)

    rows = [
        ("faults survived", survived),
        ("inputs tried", f"{sum(corpus_groups.values())} hostile mails in the corpus (+ {sample} of them "
                         f"through a real `mailbot run`), {property_total:,} generated inputs in the "
                         "property test"),
        ("mails lost", f"**{lost}** ({'; '.join(lost_parts)})"),
        ("duplicates", f"**{dups}** ({'; '.join(dup_parts)})"),
    ]
    if burst is not None:
        rows += [
            ("peak RSS", f"{burst['peak_rss_mb']:,.0f} MB for {burst['mails']:,} mails (after warm-up "
                         f"{burst['rss_after_warmup_mb']:,.0f} MB, growth "
                         f"{burst['rss_growth_after_warmup_mb']:,.0f} MB)"),
            ("throughput", f"{burst['mails_per_second']:,.1f} mails/s through the whole pipeline, store and "
                           f"outbox ({burst['seconds_processing']:,.0f} s processing, "
                           f"{burst['seconds_total']:,.0f} s including model load and sending "
                           f"{burst['replies_written']:,} replies)"),
            ("per-sender limit", f"at most {burst['replies_per_sender_max']} automatic replies to any sender "
                                 f"(limit {burst['limit']}); the one who wrote {burst['hot_sender_mails']} "
                                 f"times got {burst['hot_sender_auto_replies']}"),
        ]
    else:
        rows.append(("load", f"no figures: benchmarks/load_burst.py {steps['load'].verdict()}"))
    security = steps["security"].counts
    rows.append(("security checks", f"{security.get('passed', 0)} of {security.get('tests', 0)} passed"))

    out = [
        "# Reliability: the figures",
        "",
        "Issue 6: never lose a mail, never reply twice, never let anyone in. Everything below was",
        f"measured by `scripts/reliability_report.py` on {started:%Y-%m-%d %H:%M %Z},",
        f"on {machine()}.",
        "The machine is shared; timings are wall clock and vary with its load.",
        "",
        f"**Result: {'all checks passed' if ok else 'NOT all checks passed (see the steps)'}.**",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        "## The steps",
        "",
        "| step | result | tests | time |",
        "|---|---|---|---|",
    ]
    for step in steps.values():
        tests = (f"{step.counts.get('passed', 0)} passed, {step.counts.get('failed', 0)} failed"
                 if step.counts else "")
        out.append(f"| {step.name} | {step.verdict()} | {tests} | {step.seconds:,.0f} s |")
    out += [
        "",
        "### 1. Hostile mail (`tests/hostile`)",
        "",
        "Each mail goes through the real `Processor` (parse, clean, screen, the shipped model, the",
        "repository's macros, a SQLite store) and must get exactly one outcome that is not the crash",
        "safety net, within time and memory bounds; replies are sent by the real sender and their",
        "bytes parsed back.",
        "",
        "| group | mails |",
        "|---|---|",
        *(f"| {group} | {count} |" for group, count in corpus_groups.items()),
        "",
        "Header injection (CRLF, bare CR, U+2028/U+2029, NEL and NUL in names, subjects, Message-ID,",
        "References, Reply-To): no header appears that mailbot did not write, one recipient. Template syntax",
        "in subject, From name, sign-off, body and file names appears literally in drafts and replies.",
        "Compressed bombs (gzip, nested zip, `charset=zlib`, `Content-Encoding: gzip`) are never",
        "decompressed. A sample of the corpus also goes through a real `mailbot run` against dovecot",
        "and aiosmtpd; the daemon keeps running and picks up the next normal mail. That the agents'",
        "page runs no script and fetches nothing from such mail is the browser test",
        "`tests/web/test_browser.py::test_hostile_mail_shows_as_text_runs_nothing_and_fetches_nothing`.",
        "",
        "### 2. Property test (`tests/hostile/test_property.py`)",
        "",
        "| property | inputs |",
        "|---|---|",
        *(f"| {name} | {count:,} |" for name, count in sorted(tried.items())),
        "",
        "### 3. Security (`tests/security`)",
        "",
        "Secrets (IMAP/SMTP passwords, OAuth2 tokens, the database password) in no log (debug level),",
        "error message, store or `check-config` output, with real refused and accepted logins; every web",
        "route pinned to its role, refused for lower roles, CSRF on every state change, the address",
        "throttle not dodged with X-Forwarded-For; every store column classified; `retention_days`",
        "purging bodies in `mailbot run` and `run --once`; session cookies stored only as hashes.",
        "",
    ]
    if burst is not None:
        out += [
            f"### 4. Load (`benchmarks/load_burst.py --mails {mails}`)",
            "",
            "| outcome | mails |",
            "|---|---|",
            *(f"| {name} | {count:,} |" for name, count in burst["outcomes"].items()),
            "",
            "| written into the inbox | mails |",
            "|---|---|",
            *(f"| {name} | {count:,} |" for name, count in burst["plan"]["by_kind"].items()),
            "",
        ]
    out += ["### 5. Faults (`scripts/reliability_faults.py`)", ""]
    if faults:
        out += ["```", *(f"faults.{key}: {value}" for key, value in faults.items()), "```", ""]
    else:
        out += [f"No figures: {fault_step.verdict()}.", ""]
    out += [
        "## Found by these checks, and fixed",
        "",
        "Each fix is guarded by the test named after it.",
        "",
        "- A 2 MB mail of 45,000 tiny MIME parts held a mailbox worker for ~50 s (25 MB: ~10 min): the",
        "  parser now stops at `MAX_DELIMITER_LINES` (parts past `MAX_PARTS` were skipped anyway).",
        "  `tests/hostile/test_corpus.py::test_many_tiny_mime_parts_are_cut_not_parsed_for_a_minute`",
        "- Working through a Maildir backlog asked the store about every file at every batch: n^2/100",
        "  queries (a million for 10,000 mails). The worker now remembers recorded keys per connection.",
        "  `tests/load/test_backlog.py`. Flagging each reply's original `\\Answered` scanned (and",
        "  stat'ed) the whole folder; the likely file names are now tried first.",
        "- `retention_days` never purged in a daemon restarted more often than daily (the job's first",
        "  run was 24 h after start) nor with `mailbot run --once`. Retention now also runs at start",
        "  and at the end of `run --once`. `tests/security/test_retention.py`",
        "- `mailbot check-config` printed a database password given as `?password=`, and the admin",
        "  settings page showed it too (and a tail of a password with a raw `@`). Both now use one",
        "  redaction. `tests/security/test_secrets.py`, `tests/security/test_web.py`",
        "- For a copy of a mail handled before, the Processor reported the outcome it had computed",
        "  (e.g. skipped) while the store recorded `duplicate`. It now reports the record.",
        "  `tests/hostile/test_corpus.py::test_a_copy_is_reported_as_what_the_store_recorded`",
        "",
        "## How to rerun",
        "",
        "```sh",
        "scripts/test                                          # or: .venv/bin/pytest (everything)",
        ".venv/bin/python scripts/reliability_report.py        # all of the above; rewrites this file",
        ".venv/bin/pytest tests/hostile tests/security tests/load   # the checks on their own",
        ".venv/bin/python benchmarks/load_burst.py --mails 10000    # the burst, printed",
        ".venv/bin/python scripts/reliability_faults.py        # the fault injection, printed",
        ".venv/bin/python -m tests.hostile.corpus OUTDIR --large   # the hostile mails as .eml files",
        "```",
        "",
    ]
    return "\n".join(out), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=10_000, help="size of the load burst")
    parser.add_argument("--skip-faults", action="store_true", help="do not run the fault injection")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args(argv)
    started = datetime.now().astimezone()
    with tempfile.TemporaryDirectory(prefix="mailbot-reliability-") as folder:
        work = Path(folder)
        env = {"MAILBOT_RELIABILITY_DIR": str(work)}
        steps: dict[str, Step] = {}
        steps["hostile"] = pytest_step(
            "hostile corpus", ["tests/hostile", "--ignore=tests/hostile/test_property.py"], work)
        steps["property"] = pytest_step("property test", ["tests/hostile/test_property.py"], work, env=env)
        steps["security"] = pytest_step("security", ["tests/security"], work)
        load = run(Step("load burst", [sys.executable, "benchmarks/load_burst.py", "--mails", str(args.mails),
                                       "--json"]), timeout=3 * 3600)
        steps["load"] = load
        burst = None
        for line in reversed(load.output.splitlines()):
            if line.startswith("{"):
                burst = json.loads(line)
                break
        faults_step = Step("fault injection", [sys.executable, str(FAULTS_SCRIPT), "--quiet"])
        if args.skip_faults:
            faults_step.note = "skipped with --skip-faults"
        elif not FAULTS_SCRIPT.exists():
            faults_step.note = "scripts/reliability_faults.py does not exist yet"
        else:
            run(faults_step, timeout=4 * 3600)
        steps["faults"] = faults_step
        property_file = work / "property.json"
        tried = json.loads(property_file.read_text()) if property_file.exists() else {}
    _total, groups, sample = corpus_size()
    text, ok = render(steps, burst, faults_figures(faults_step), tried, groups, sample, started, args.mails)
    args.out.write_text(text, encoding="utf-8")
    _log(f"wrote {args.out} ({'all passed' if ok else 'NOT all passed'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
