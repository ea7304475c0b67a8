"""What the forgetting suite costs to score, and what computing each question once for all its choices saves.

Usage: python benchmarks/forgetting_scoring.py [--model smollm2-135m-instruct] [--limit 40] [--dtype float32]

Scores the bundled standard tier (forgetting.tier: standard), --limit questions per benchmark, with lm-eval's own
HF model (every (question, choice) pair as its own sequence) and with Tunesmith's shared-prefix scoring (each
question once, its cache repeated for the choices; tunesmith/forgetting/shared_prefix.py), in that order, after
one warm-up pass each; checks that both give the same right/wrong outcome on every question. Prints a table and
writes benchmarks/results/forgetting_scoring.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()

    from tunesmith.config.schema import tier_benchmarks
    from tunesmith.forgetting.benchmarks import in_process_lm, run_benchmarks
    from tunesmith.models.load import load_model
    from tunesmith.models.resolve import default_model_cache, resolve_model
    from tunesmith.records import Precision

    model, tokenizer = load_model(
        resolve_model(args.model, default_model_cache()), Precision("cpu", args.dtype, "benchmark")
    )
    benchmarks = tier_benchmarks("standard")
    rows, outcomes = [], {}
    with tempfile.TemporaryDirectory() as work:
        for name, shared in (("lm-eval", False), ("shared prefix", True)):
            run_benchmarks(in_process_lm(model, tokenizer, 16, shared), benchmarks, Path(work) / name, 1)  # warm-up
            start = time.perf_counter()
            scores = run_benchmarks(in_process_lm(model, tokenizer, 16, shared), benchmarks, Path(work) / name,
                                    args.limit)  # fmt: skip
            seconds = time.perf_counter() - start
            questions = sum(s["n"] for s in scores.values())
            outcomes[name] = {b: s["correct"] for b, s in scores.items()}
            rows.append({"scoring": name, "questions": questions, "seconds": round(seconds, 1),
                         "questions_per_s": round(questions / seconds, 2),
                         "accuracy": {b: round(s["acc"], 4) for b, s in scores.items()}})  # fmt: skip
    same = sum(
        a == b
        for bench in outcomes["lm-eval"]
        for a, b in zip(outcomes["lm-eval"][bench], outcomes["shared prefix"][bench], strict=True)
    )
    total = sum(len(v) for v in outcomes["lm-eval"].values())
    print(f"{'scoring':<14} {'questions':>9} {'seconds':>8} {'questions/s':>12}")
    for row in rows:
        print(f"{row['scoring']:<14} {row['questions']:>9} {row['seconds']:>8} {row['questions_per_s']:>12}")
    print(f"same right/wrong outcome on {same} of {total} questions; {args.model}, {args.dtype}, CPU")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "forgetting_scoring.json"
    out.write_text(json.dumps({"model": args.model, "dtype": args.dtype, "limit": args.limit, "rows": rows,
                               "same_outcomes": same, "questions": total}, indent=2))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
