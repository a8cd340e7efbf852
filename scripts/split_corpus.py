"""Split the raw corpus batches (mailbot/nlp/corpus/raw/*.jsonl) into train/dev/test.

Stratified by language, category and tone, 70/15/15, with a fixed seed so the split is
reproducible. test.jsonl is for the final report only: never train or tune on it.

Batches come in generations: files named ``g2_*.jsonl`` are the second generation, and so on
(plain names are the first). Each generation is split on its own and appended, so adding a
batch never moves an existing mail from one split to another (a mail that was in test stays
there, and nothing that was trained on lands in test).

    python scripts/split_corpus.py
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "mailbot" / "nlp" / "corpus"
SEED = 20261122


def generation(file: Path) -> int:
    head = file.name.split("_", 1)[0]
    return int(head[1:]) if head[:1] == "g" and head[1:].isdigit() else 1


def split(rows: list[dict], rng: random.Random) -> dict[str, list[dict]]:
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["language"], row["category"], row["tone"])].append(row)
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
    for items in splits.values():
        rng.shuffle(items)
    return splits


def main() -> None:
    seen: set[str] = set()
    by_generation: dict[int, list[dict]] = defaultdict(list)
    for file in sorted((CORPUS / "raw").glob("*.jsonl"), key=lambda f: (generation(f), f.name)):
        for line in file.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            key = " ".join(row["body"].split()).lower()
            if key in seen:
                continue  # the same mail twice would leak between splits
            seen.add(key)
            by_generation[generation(file)].append(
                {k: row[k] for k in ("subject", "body", "language", "category", "tone", "signals")})
    rng = random.Random(SEED)
    out: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for gen in sorted(by_generation):
        for name, items in split(by_generation[gen], rng).items():
            out[name].extend(items)
    for name, items in out.items():
        with open(CORPUS / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for row in items:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(items)}")


if __name__ == "__main__":
    main()
