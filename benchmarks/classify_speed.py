"""Analysis speed, load time and memory of the shipped model (issue 3's targets).

    .venv/bin/python benchmarks/classify_speed.py [--n 4000] [--model DIR]

Prints: model load time, throughput in mails/s for mails of about 1,500 characters (one
process, the same path `mailbot classify` takes: clean, detect language, spaCy pipeline,
explanation), and peak resident memory. Targets: >= 2,000 mails/s, load < 2 s, peak < 400 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mails_of_about(chars: int, n: int) -> list[tuple[str, str]]:
    """Test-split mails, joined or cut to about ``chars`` characters each."""
    rows = [json.loads(line) for line in (ROOT / "mailbot/nlp/corpus/test.jsonl").read_text().splitlines()]
    rng = random.Random(7)
    out = []
    for _ in range(n):
        row = rng.choice(rows)
        body = row["body"]
        while len(body) < chars:
            body += "\n\n" + rng.choice([r for r in rows if r["language"] == row["language"]])["body"]
        out.append((row["subject"], body[:chars]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--model")
    args = parser.parse_args()

    started = time.perf_counter()
    from mailbot.nlp.analyzer import Analyzer, MailText

    analyzer = Analyzer.load(args.model)
    load = time.perf_counter() - started
    mails = [MailText(s, b) for s, b in mails_of_about(1500, args.n)]
    analyzer.analyse_many(mails[:200])  # warm-up: caches, first-call costs
    started, cpu_started = time.perf_counter(), time.process_time()
    results = analyzer.analyse_many(mails)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    assert len(results) == len(mails)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    avg = sum(len(m.subject) + len(m.body) for m in mails) / len(mails)
    print(f"model load (import + both pipelines): {load:.2f} s   (target < 2 s)")
    print(f"throughput: {len(mails) / elapsed:,.0f} mails/s for {len(mails)} mails of "
          f"~{avg:,.0f} characters   (target >= 2,000)")
    # On a shared machine wall time includes waiting for the CPU; CPU time does not.
    print(f"           {len(mails) / cpu:,.0f} mails per CPU-second "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"peak RSS: {peak_mb:,.0f} MB   (target < 400 MB)")


if __name__ == "__main__":
    main()
