"""Rebuild data/standard/ (forgetting.tier: standard) from the multiple-choice subsets in ../shared/data.

A few hundred seeded items from each of ARC, HellaSwag, MMLU, WinoGrande and BoolQ, in the
{"question", "choices", "answer"} shape of every local benchmark. Run from the repository root:
    .venv/bin/python scripts/bundle_standard_tier.py ../shared/data
"""

import json
import random
import sys
from pathlib import Path

SEED = 20261126
PER_BENCHMARK = 200


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sample(rows: list[dict], n: int, seed: int = SEED) -> list[dict]:
    return random.Random(seed).sample(rows, min(n, len(rows)))


def mmlu(rows: list[dict], per_subject: int) -> list[dict]:
    by_subject: dict[str, list[dict]] = {}
    for row in rows:
        by_subject.setdefault(row["subject"], []).append(row)
    return [r for subject in sorted(by_subject) for r in sample(by_subject[subject], per_subject)]


def boolq(row: dict) -> dict:
    # The passage is part of the question: our benchmark files have no context field.
    return {"question": f"{row['context']}\n{row['question']}?", "choices": row["choices"], "answer": row["answer"]}


def main(shared: Path) -> None:
    mc, extra = shared / "general_mc", shared / "general_mc_extra"
    half = PER_BENCHMARK // 2
    arc = sample(read(mc / "arc-easy.jsonl"), half) + sample(read(mc / "arc-challenge.jsonl"), half)
    benchmarks = {
        "arc": arc,
        "hellaswag": sample(read(extra / "hellaswag.jsonl"), PER_BENCHMARK),
        "mmlu": mmlu(read(extra / "mmlu-54subjects.jsonl"), per_subject=4),
        "winogrande": sample(read(extra / "winogrande.jsonl"), PER_BENCHMARK),
        "boolq": [boolq(r) for r in sample(read(extra / "boolq.jsonl"), PER_BENCHMARK)],
    }
    out = Path("data/standard")
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in benchmarks.items():
        keep = [{"question": r["question"], "choices": r["choices"], "answer": r["answer"]} for r in rows]
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
        print(f"{name}: {len(keep)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
