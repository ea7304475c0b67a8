"""How close is the decision stage's memory estimate to what training really uses?

Usage: python benchmarks/memory_estimate.py [--steps 6] [--methods full,lora,...]
For each method, a fresh process loads the default model (SmolLM2-135M-Instruct), trains a few steps with
Tunesmith's own trainer on the bundled tickets, and samples its resident memory. Measured = peak RSS
minus the RSS of the same process just before the model was loaded (the interpreter and libraries are not
training memory). Writes benchmarks/results/memory_estimate.json and prints a table. Target: within 25%.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
METHODS = ["full", "lora", "qlora", "adapter", "prefix", "prompt", "ia3"]


def worker(method: str, steps: int, out: Path) -> None:
    """Runs in its own process: measure one method."""
    import psutil

    from tunesmith.config.schema import DataConfig, TrainingConfig
    from tunesmith.curation.curate import curate
    from tunesmith.decision.memory import estimate, workload_for
    from tunesmith.models.hardware import choose_precision
    from tunesmith.models.load import load_tokenizer
    from tunesmith.models.resolve import resolve_model
    from tunesmith.models.shape import model_shape
    from tunesmith.profiling import measure
    from tunesmith.prompts import system_prompt
    from tunesmith.training.sft import train_files

    labels = ["urgent", "billing", "technical", "general"]
    base = resolve_model("smollm2-135m-instruct", Path("~/.cache/tunesmith/models"))
    precision = choose_precision()
    system = system_prompt("Classify the customer message into one of: {labels}. Answer with the label only.", labels)
    work = Path(tempfile.mkdtemp(prefix=f"mem-{method}-"))
    data = curate(
        DataConfig(path=REPO / "data" / "tickets.jsonl", labels=labels), load_tokenizer(base), system, 256, work / "cur"
    )
    config = TrainingConfig(max_steps=steps, logging_steps=1, max_seq_length=256)
    seq_len = int(data.token_stats["max"])
    estimated = estimate(method, model_shape(base), workload_for(config, precision.dtype, seq_len, False))
    idle = psutil.Process().memory_info().rss
    with measure(interval_s=0.02) as usage:
        trained = train_files(
            base, data.train_path, data.validation_path, system, config, method, precision, work / "out"
        )
    measured_gb = (usage.peak_rss_mb * 2**20 - idle) / 1e9
    out.write_text(
        json.dumps(
            {
                "method": method,
                "precision": precision.dtype,
                "seq_len": seq_len,
                "batch_size": config.batch_size,
                "steps": int(trained.metrics["steps"]),
                "trainable_params": int(trained.metrics["trainable_params"]),
                "estimated_trainable_params": estimated.trainable_params,
                "estimated_gb": round(estimated.total_gb, 3),
                "estimate": estimated.to_json(),
                "measured_gb": round(measured_gb, 3),
                "error_pct": round(100 * (estimated.total_gb - measured_gb) / measured_gb, 1),
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, Path(args.out))
        return 0
    rows = []
    for method in args.methods.split(","):
        out = Path(tempfile.mkstemp(suffix=".json")[1])
        subprocess.run(
            [sys.executable, __file__, "--worker", method, "--steps", str(args.steps), "--out", str(out)],
            check=True,
            env=os.environ | {"TOKENIZERS_PARALLELISM": "false"},
        )
        rows.append(json.loads(out.read_text()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / "memory_estimate.json"
    target.write_text(json.dumps({"target_error_pct": 25, "runs": rows}, indent=2))
    print(f"\n{'method':<10}{'trainable':>14}{'estimate GB':>14}{'measured GB':>14}{'error %':>10}")
    for r in rows:
        print(
            f"{r['method']:<10}{r['trainable_params']:>14,}{r['estimated_gb']:>14.3f}{r['measured_gb']:>14.3f}{r['error_pct']:>10.1f}"
        )
    print(
        f"precision {rows[0]['precision']}, batch {rows[0]['batch_size']} x {rows[0]['seq_len']} tokens\n"
        f"written: {target}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
