#!/usr/bin/env python3
"""Run the fault-injection tests (tests/faults/) and print their figures.

    .venv/bin/python scripts/reliability_faults.py [--seed N] [-k EXPR] [--quiet]

Runs pytest on tests/faults against the real servers of the test suite (a private dovecot,
aiosmtpd, a throwaway PostgreSQL cluster, real ``mailbot run`` processes), collects the
figures each test reports (``MAILBOT_FAULTS_REPORT``), and prints one ``faults.<key>: <value>``
line per figure on stdout, in a fixed order; pytest's own output goes to stderr.

Per kind of fault (``faults.<kind>.*``): faults injected and survived, mails in, outcomes
recorded, mails lost, duplicate replies, seconds, and what else the test measured. Totals
(``faults.*``) add up every kind except the ``known_limit`` ones: those tests pin down the
one case no client can make safe (a relay that took a reply, kept no copy, and whose answer
was lost or outlived by a crash: the reply is sent again rather than lost) and are listed
under ``faults.known_limit.*``.

Exit status: 0 when every test passed and no mail was lost or answered twice; 1 otherwise;
2 when pytest could not run at all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORT_ENV = "MAILBOT_FAULTS_REPORT"
SEED_ENV = "MAILBOT_FAULT_SEED"

# Printed first for every kind, in this order; anything else a test measured follows, sorted.
MAIN_KEYS = ("faults_injected", "faults_survived", "mails_in", "outcomes_recorded", "mails_lost",
             "duplicate_replies", "replies_received", "seconds")
TOTAL_KEYS = ("faults_injected", "faults_survived", "mails_in", "outcomes_recorded", "mails_lost",
              "duplicate_replies", "replies_received")
SKIPPED_KEYS = {"kind", "scenario", "passed", "known_limit"}


def run_pytest(report: Path, junit: Path, *, seed: int | None, select: str | None,
               quiet: bool) -> int:
    env = dict(os.environ)
    env[REPORT_ENV] = str(report)
    if seed is not None:
        env[SEED_ENV] = str(seed)
    command = [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider",
               "-W", "ignore::DeprecationWarning", f"--junitxml={junit}"]
    if select:
        command += ["-k", select]
    done = subprocess.run(command, cwd=ROOT, env=env, check=False,
                          stdout=subprocess.DEVNULL if quiet else sys.stderr,
                          stderr=subprocess.DEVNULL if quiet else sys.stderr)
    return done.returncode


def read_records(report: Path) -> list[dict[str, Any]]:
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_counts(junit: Path) -> dict[str, int]:
    """tests, passed, failed (failures + errors) and skipped from pytest's JUnit XML."""
    counts = {"tests": 0, "failed": 0, "skipped": 0}
    if junit.exists():
        for suite in ElementTree.parse(junit).getroot().iter("testsuite"):
            counts["tests"] += int(suite.get("tests", 0))
            counts["failed"] += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            counts["skipped"] += int(suite.get("skipped", 0))
    counts["passed"] = counts["tests"] - counts["failed"] - counts["skipped"]
    return counts


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value).replace("\n", " ")


def summary(records: list[dict[str, Any]], counts: dict[str, int], wall: float,
            pytest_status: int) -> tuple[list[str], bool]:
    """The ``faults.`` lines and whether the run is good."""
    lines: list[str] = []

    def out(key: str, value: Any) -> None:
        lines.append(f"faults.{key}: {_value(value)}")

    by_kind: dict[str, dict[str, Any]] = defaultdict(dict)
    limits: dict[str, dict[str, Any]] = defaultdict(dict)
    for record in records:
        kind = str(record.get("kind") or record.get("scenario", "unknown"))
        target = limits if record.get("known_limit") else by_kind
        merged = target[kind]
        for key, value in record.items():
            if key in SKIPPED_KEYS:
                continue
            if isinstance(value, int | float) and not isinstance(value, bool) and key in merged:
                merged[key] += value
            else:
                merged[key] = value
        merged["passed"] = bool(merged.get("passed", True)) and bool(record.get("passed"))

    seeds = sorted({r["seed"] for r in records if "seed" in r})
    out("seed", seeds[0] if len(seeds) == 1 else (seeds or "none"))
    out("tests", counts["tests"])
    out("tests_passed", counts["passed"])
    out("tests_failed", counts["failed"])
    out("tests_skipped", counts["skipped"])
    out("kinds", sorted(by_kind))

    def out_kind(prefix: str, figures: dict[str, Any]) -> None:
        for key in MAIN_KEYS:
            if key in figures:
                out(f"{prefix}.{key.removeprefix('faults_')}", figures[key])
        for key in sorted(set(figures) - set(MAIN_KEYS) - {"passed"}):
            out(f"{prefix}.{key}", figures[key])
        out(f"{prefix}.passed", figures["passed"])

    for kind in sorted(by_kind):
        out_kind(kind, by_kind[kind])
    for kind in sorted(limits):
        out_kind(f"known_limit.{kind}", limits[kind])
    totals = {key: sum(int(f.get(key) or 0) for f in by_kind.values()) for key in TOTAL_KEYS}
    for key in TOTAL_KEYS:
        out(key.removeprefix("faults_"), totals[key])
    out("seconds", round(wall, 1))
    good = (pytest_status == 0 and counts["failed"] == 0 and counts["tests"] > 0
            and totals["mails_lost"] == 0 and totals["duplicate_replies"] == 0
            and totals["faults_injected"] == totals["faults_survived"])
    out("result", "pass" if good else "fail")
    return lines, good


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, help=f"kill -9 schedule seed (default: random; {SEED_ENV})")
    parser.add_argument("-k", dest="select", help="only the tests matching this pytest -k expression")
    parser.add_argument("--quiet", action="store_true", help="do not show pytest's output on stderr")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mailbot-faults-") as folder:
        report, junit = Path(folder) / "figures.jsonl", Path(folder) / "junit.xml"
        started = time.monotonic()
        status = run_pytest(report, junit, seed=args.seed, select=args.select, quiet=args.quiet)
        wall = time.monotonic() - started
        if status not in (0, 1):    # 2: interrupted, 3: internal error, 4: usage, 5: no tests
            print(f"faults.error: pytest exited with {status}", flush=True)
            return 2
        lines, good = summary(read_records(report), test_counts(junit), wall, status)
    print("\n".join(lines), flush=True)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
