"""What reading each question once costs and changes: lm-eval's own HF model against the shared-prefix one
(tunesmith/forgetting/shared_prefix.py) on a bundled tier, same model, same questions.

Usage: python benchmarks/forgetting_scoring.py [--tier standard] [--limit N] [--model smollm2-135m-instruct]
       [--dtype bfloat16]
Per benchmark: answer choices per second of each scorer, how many questions' right/wrong differ between them
(float rounding can flip a near-tie), the accuracy each gives and what guessing would score (chance). Writes
benchmarks/results/forgetting_scoring.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tunesmith.config.schema import default_model_cache, tier_benchmarks
from tunesmith.forgetting.benchmarks import _reporting, run_benchmarks
from tunesmith.forgetting.shared_prefix import shared_prefix
from tunesmith.models.load import load_model
from tunesmith.models.prepared import check_model
from tunesmith.records import Precision

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def score(lm_class, model, tokenizer, benchmarks, limit: int | None) -> tuple[dict, float]:
    lm = _reporting(lm_class)(pretrained=model, tokenizer=tokenizer, batch_size=16)
    start = time.perf_counter()
    scores = run_benchmarks(lm, benchmarks, Path(tempfile.mkdtemp()), limit)
    return scores, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tier", default="standard")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()
    from lm_eval.models.huggingface import HFLM

    path = check_model(args.model, default_model_cache())
    model, tokenizer = load_model(path, Precision("cpu", args.dtype, "benchmark"))
    rows = []
    for benchmark in tier_benchmarks(args.tier):
        stock, stock_s = score(HFLM, model, tokenizer, [benchmark], args.limit)
        shared, shared_s = score(shared_prefix(HFLM), model, tokenizer, [benchmark], args.limit)
        a, b = stock[benchmark.name], shared[benchmark.name]
        counts = [len(json.loads(line)["choices"]) for line in benchmark.path.read_text().splitlines()[: a["n"]]]
        choices = sum(counts)
        rows.append({
            "benchmark": benchmark.name, "questions": a["n"], "choices": choices,
            "stock_s": round(stock_s, 1), "shared_s": round(shared_s, 1),
            "speedup": round(stock_s / shared_s, 2), "differing_questions": sum(
                x != y for x, y in zip(a["correct"], b["correct"], strict=True)),
            "stock_acc": a["acc"], "shared_acc": b["acc"], "chance": round(sum(1 / k for k in counts) / len(counts), 3),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    total = {k: sum(r[k] for r in rows) for k in ("questions", "choices", "stock_s", "shared_s", "differing_questions")}
    print("| benchmark | questions | choices | lm-eval HF s | shared prefix s | speed-up | questions differing |")
    print("|---|---|---|---|---|---|---|")
    for r in [*rows, {"benchmark": "all", **total, "speedup": round(total["stock_s"] / total["shared_s"], 2)}]:
        print(f"| {r['benchmark']} | {r['questions']} | {r['choices']} | {r['stock_s']:.1f} | {r['shared_s']:.1f} | "
              f"{r['speedup']:.2f}x | {r['differing_questions']} |")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "forgetting_scoring.json"
    out.write_text(json.dumps({"settings": vars(args), "rows": rows, "total": total}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
