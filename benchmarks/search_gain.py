"""What the hyperparameter search buys: the pipeline with the method's defaults against the same pipeline with
training.search, on a banking77 slice and the default model.

Usage: python benchmarks/search_gain.py [--labels 8] [--per-label 40] [--test 0.4] [--trials 8]
                                        [--trial-steps 30] [--method lora] [--set key=value ...]
Both runs use the real finetune-pipeline flow on the same curated splits (the same seed): one trains with the
method's defaults, the other searches first (Optuna, pruned by validation loss, scored on the validation split)
and trains with the chosen trial's settings. The test split is scored only by the final models. Prints a table
(test accuracy with its 95% Wilson interval, wall time of the search and of the whole run, trials run and
pruned, the chosen settings) and writes benchmarks/results/search_gain.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
RESULTS = REPO / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=8)
    parser.add_argument("--per-label", type=int, default=40)
    parser.add_argument("--test", type=float, default=0.4)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--trial-steps", type=int, default=30, help="training steps per trial")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    from method_comparison import BANKING77, subset, write_config

    from tunesmith.comparison.table import interval
    from tunesmith.flows.pipeline import finetune_pipeline

    if not BANKING77.is_file():
        sys.exit(f"{BANKING77} not found: this benchmark needs the shared banking77 data")
    work = RESULTS / "search_gain_work"
    work.mkdir(parents=True, exist_ok=True)
    labels = subset(args.labels, args.per_label, work / "banking77_subset.jsonl")
    extra = f"training:\n  method: {args.method}\nforgetting:\n  enabled: false\npromotion:\n  enabled: false\n"
    config = write_config(work, "banking77-search", labels, args.test, "benchmark-search", extra)
    runs = {}
    for name, extra in (
        ("defaults", []),
        ("searched", [f"training.search.trials={args.trials}", f"training.search.max_steps={args.trial_steps}"]),
    ):
        start = time.perf_counter()
        result = finetune_pipeline(str(config), [*args.overrides, *extra])
        wall = time.perf_counter() - start
        out = Path(result.output_dir)
        search_file = out / "search" / "search.json"
        search = json.loads(search_file.read_text()) if search_file.is_file() else None
        evaluation = _stage_run(result, "evaluation")
        runs[name] = {
            "accuracy": result.metrics.get("finetuned_accuracy"),
            "n_test": int(evaluation.data.params["n_examples"]) if evaluation else None,
            "wall_s": wall,
            "search_wall_s": _stage_wall(result, "search"),
            "training_wall_s": _stage_wall(result, "training"),
            "trials": len(search["trials"]) if search else 0,
            "pruned": sum(t["state"] == "pruned" for t in search["trials"]) if search else 0,
            "chosen": search["best"]["settings"] if search else "defaults",
            "explanation": search["explanation"] if search else "",
            "run_dir": str(out),
        }
    lines = ["| run | test accuracy | 95% CI | search s | whole run s | trials (pruned) | settings |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in runs.items():
        n = r["n_test"] or round(args.labels * args.per_label * args.test)
        lines.append(
            f"| {name} | {r['accuracy']:.3f} | {interval(r['accuracy'], n, 'accuracy')} | "
            f"{r['search_wall_s'] or 0:.0f} | {r['wall_s']:.0f} | {r['trials']} ({r['pruned']}) | {r['chosen']} |"
        )
    table = "\n".join(lines)
    print(table)
    record = {"args": vars(args), "labels": labels, "runs": runs, "table": table}
    (RESULTS / "search_gain.json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")


def _stage_run(result, stage: str):
    """The pipeline run's child run of one stage, or None when the stage did not run."""
    from mlflow import MlflowClient

    runs = MlflowClient(result.tracking_uri).search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}' and tags.`tunesmith.stage` = '{stage}'"
    )
    return runs[0] if runs else None


def _stage_wall(result, stage: str) -> float | None:
    run = _stage_run(result, stage)
    return run.data.metrics.get("stage_wall_s") if run else None


if __name__ == "__main__":
    main()
