"""Split the raw corpus batches (mailbot/nlp/corpus/raw/*.jsonl) into train/dev/test.

Stratified by language, category and tone, 70/15/15, with a fixed seed so the split is
reproducible. test.jsonl is for the final report only: never train or tune on it.

    python scripts/split_corpus.py
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "mailbot" / "nlp" / "corpus"
SEED = 20261122


def main() -> None:
    rows: list[dict] = []
    seen: set[str] = set()
    for file in sorted((CORPUS / "raw").glob("*.jsonl")):
        for line in file.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            key = " ".join(row["body"].split()).lower()
            if key in seen:
                continue  # the same mail twice would leak between splits
            seen.add(key)
            rows.append({k: row[k] for k in ("subject", "body", "language", "category", "tone", "signals")})
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["language"], row["category"], row["tone"])].append(row)
    rng = random.Random(SEED)
    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for key in sorted(groups):
        items = groups[key]
        rng.shuffle(items)
        n = len(items)
        n_test = round(n * 0.15)
        n_dev = round(n * 0.15)
        if n >= 3:
            n_test, n_dev = max(n_test, 1), max(n_dev, 1)
        splits["test"].extend(items[:n_test])
        splits["dev"].extend(items[n_test:n_test + n_dev])
        splits["train"].extend(items[n_test + n_dev:])
    for name, items in splits.items():
        rng.shuffle(items)
        with open(CORPUS / f"{name}.jsonl", "w", encoding="utf-8") as out:
            for row in items:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(items)}")


if __name__ == "__main__":
    main()
