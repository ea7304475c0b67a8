"""Curation at scale: exact + MinHash near-duplicate removal on generated instruction data.

Usage: python benchmarks/dedup_scale.py [--sizes 10000,25000,50000,100000]
Generates instruction examples of about 50 words, plants exact duplicates (case/whitespace changes) and
near duplicates (1-3 word edits), runs the curation stage's own dedup functions and reports wall time,
peak memory and recall/precision against the planted duplicates. Writes benchmarks/results/dedup_scale.json.
Target: exact + MinHash dedup of 100,000 examples in at most 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tunesmith.config.schema import NearDedupConfig  # noqa: E402
from tunesmith.curation.dedup import exact_dedup, near_dedup  # noqa: E402
from tunesmith.curation.records import make_example  # noqa: E402
from tunesmith.profiling import measure  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "te",
    "su",
    "ne",
    "po",
    "di",
    "fa",
    "gu",
    "be",
    "zo",
    "vi",
    "ta",
    "ro",
    "sha",
    "qui",
]


def vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def edit(words: list[str], vocab: list[str], rng: random.Random) -> list[str]:
    words = list(words)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(words))
        op = rng.choice(["replace", "delete", "insert"])
        if op == "replace":
            words[i] = rng.choice(vocab)
        elif op == "delete" and len(words) > 10:
            del words[i]
        else:
            words.insert(i, rng.choice(vocab))
    return words


def generate(n: int, seed: int = 0, exact_rate: float = 0.05, near_rate: float = 0.05):
    """Rows {instruction, input, output} plus the set of indices that are planted duplicates."""
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    rows: list[list[str]] = []
    planted: set[int] = set()
    while len(rows) < n:
        r = rng.random()
        if rows and r < exact_rate:
            planted.add(len(rows))
            rows.append([w.upper() if rng.random() < 0.1 else w for w in rows[rng.randrange(len(rows))]])
        elif rows and r < exact_rate + near_rate:
            planted.add(len(rows))
            rows.append(edit(rows[rng.randrange(len(rows))], vocab, rng))
        else:
            rows.append([rng.choice(vocab) for _ in range(rng.randint(40, 60))])
    examples = []
    for i, words in enumerate(rows):
        cut1, cut2 = 10, len(words) - 10
        prompt = " ".join(words[:cut1]) + "\n\n" + " ".join(words[cut1:cut2])
        examples.append(
            make_example(
                [{"role": "user", "content": prompt}, {"role": "assistant", "content": " ".join(words[cut2:])}],
                f"row {i + 1}",
            )
        )
    return examples, planted


def run(n: int, near: NearDedupConfig) -> dict:
    examples, planted = generate(n)
    index = {id(e): i for i, e in enumerate(examples)}
    with measure() as exact_usage:
        exact = exact_dedup(examples)
    with measure() as near_usage:
        nearer = near_dedup(exact.kept, near.threshold, near.num_perm, near.shingle, near.ngram)
    removed = {index[id(d)] for d, _, _ in exact.removed} | {index[id(d)] for d, _, _ in nearer.removed}
    hits = len(removed & planted)
    return {
        "examples": n,
        "planted_duplicates": len(planted),
        "exact_removed": len(exact.removed),
        "near_removed": len(nearer.removed),
        "exact_s": round(exact_usage.wall_s, 2),
        "near_s": round(near_usage.wall_s, 2),
        "total_s": round(exact_usage.wall_s + near_usage.wall_s, 2),
        "peak_rss_mb": round(max(exact_usage.peak_rss_mb, near_usage.peak_rss_mb)),
        "recall": round(hits / len(planted), 4) if planted else 1.0,
        "precision": round(hits / len(removed), 4) if removed else 1.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,25000,50000,100000")
    args = parser.parse_args()
    near = NearDedupConfig()
    rows = [run(int(n), near) for n in args.sizes.split(",")]
    result = {"cpus": os.cpu_count(), "near_dedup": near.model_dump(), "target_s_at_100k": 60, "runs": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "dedup_scale.json"
    out.write_text(json.dumps(result, indent=2))
    header = ["examples", "planted_duplicates", "exact_s", "near_s", "total_s", "peak_rss_mb", "recall", "precision"]
    print(" ".join(f"{h:>18}" for h in header))
    for row in rows:
        print(" ".join(f"{row[h]:>18}" for h in header))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
