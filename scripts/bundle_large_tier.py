"""Build data/large/ (forgetting.tier: large) from data/standard/ and the multiple-choice subsets in ../shared/data.

Every standard item, plus every other item of the shared general-capability sets, in the {"question", "choices",
"answer"} shape of every local benchmark: about 4,300 questions, enough for a paired test to resolve a 5% threshold
at a baseline near chance, where a small model's answers change most. Run from the repository root:
    .venv/bin/python scripts/bundle_large_tier.py ../shared/data
"""

import json
import sys
from pathlib import Path

from bundle_standard_tier import boolq, read  # the standard tier's reader and BoolQ conversion (scripts/ on sys.path)

STANDARD = Path("data/standard")
OUT = Path("data/large")


def main(shared: Path) -> None:
    mc, extra = shared / "general_mc", shared / "general_mc_extra"
    more = {
        "arc": read(mc / "arc-easy.jsonl") + read(mc / "arc-challenge.jsonl"),
        "hellaswag": read(extra / "hellaswag.jsonl") + read(mc / "hellaswag.jsonl"),
        "mmlu": read(extra / "mmlu-54subjects.jsonl") + read(mc / "mmlu-miscellaneous.jsonl")
        + read(mc / "mmlu-high-school-geography.jsonl") + read(mc / "mmlu-global-facts.jsonl"),
        "winogrande": read(extra / "winogrande.jsonl"),
        "boolq": [boolq(r) for r in read(extra / "boolq.jsonl")],
        "commonsenseqa": read(mc / "commonsenseqa.jsonl"),
        "piqa": read(mc / "piqa.jsonl"),
        "openbookqa": read(extra / "openbookqa.jsonl"),
    }  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, rows in more.items():
        standard = read(STANDARD / f"{name}.jsonl") if (STANDARD / f"{name}.jsonl").is_file() else []
        seen = {(r["question"], tuple(r["choices"])) for r in standard}
        kept = list(standard)
        for r in rows:
            key = (r["question"], tuple(r["choices"]))
            if key not in seen:
                seen.add(key)
                kept.append({"question": r["question"], "choices": r["choices"], "answer": r["answer"]})
        (OUT / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        total += len(kept)
        print(f"{name}: {len(kept)} ({len(standard)} standard)")
    print(f"total: {total}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
