"""The real-data matrix: `tunesmith run` on every dataset in ../shared/data that fits a supported format.

Usage: python benchmarks/real_data_matrix.py [--datasets banking77,snips] [--rows 1200] [--steps 40]
       [--batch-size N] [--eval-examples 60] [--baseline-examples 40]
Each dataset is used as its user would bring it (its own columns, its own label names), sampled to at most
--rows rows (classification: the same number per label, so every label can be split and learned) and run
with the default model and the default settings except a short training (training.max_steps), forgetting on
(its default suite and verdict, mitigation included), and capped evaluation and baseline sizes so that a CPU
finishes the matrix. squad_rag's questions carry a
list of answers; the first answer becomes the reference, and its passages are the RAG corpus.
Every row must complete (a decision to stop at prompting or RAG counts as complete) and produce its report.
Writes benchmarks/results/real_data_matrix.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = REPO.parent / "shared" / "data"
CLI = Path(sys.executable).parent / "tunesmith"

MIN_PER_LABEL = 10
DATASETS = {
    "banking77": {"file": "banking77/train.jsonl", "format": "classification"},
    "clinc150": {"file": "clinc150/train.jsonl", "format": "classification"},
    "snips": {"file": "snips/train.jsonl", "format": "classification"},
    "bitext_cs": {"file": "bitext_cs/train.jsonl", "format": "instruction"},
    "dolly_open_qa": {"file": "dolly_open_qa/train.jsonl", "format": "instruction"},
    "sgd_chat": {"file": "sgd_chat/train.jsonl", "format": "chat"},
    "squad_rag": {"file": "squad_rag/questions.jsonl", "format": "instruction", "corpus": "squad_rag/corpus.jsonl"},
    "alpaca_5k": {"file": "alpaca_5k/train.jsonl", "format": "instruction"},
}


def per_label(rows: list[dict], n: int, seed: int = 0) -> list[dict]:
    """Up to n rows of each label, drawn at random (seeded)."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    taken: dict[str, int] = {}
    chosen = []
    for row in rows:
        if taken.get(row["label"], 0) < n:
            taken[row["label"]] = taken.get(row["label"], 0) + 1
            chosen.append(row)
    return chosen


def _sample(rows: list[dict], data_format: str, limit: int, seed: int = 0) -> list[dict]:
    if data_format != "classification":
        shuffled = list(rows)
        random.Random(seed).shuffle(shuffled)
        return shuffled[:limit]
    # At least MIN_PER_LABEL of each label: after duplicate removal every label must still fill the three splits
    # and data.min_examples_per_class (151 clinc150 intents at 1200 rows would leave 7 each, and some 6).
    return per_label(rows, max(MIN_PER_LABEL, limit // len({r["label"] for r in rows})), seed)


def prepare(name: str, spec: dict, work: Path, args) -> Path:
    """The sampled data file and the run config a user of this dataset would write."""
    rows = [json.loads(line) for line in (DATA / spec["file"]).read_text(encoding="utf-8").splitlines() if line]
    if name == "squad_rag":
        rows = [{"instruction": r["question"], "output": r["answers"][0]} for r in rows]
    rows = _sample(rows, spec["format"], args.rows)
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    config = {
        "name": f"matrix-{name.replace('_', '-')}",
        # One output folder for every dataset: the base model's general scores are the same for all of them, so
        # they are computed by the first row and reused by the others from its cache.
        "output_dir": str(work / "runs"),
        "data": {"path": str(data), "format": spec["format"]},
        "training": {"max_steps": args.steps} | ({"batch_size": args.batch_size} if args.batch_size else {}),
        "evaluation": {"max_examples": args.eval_examples},
        "decision": {"baselines": {"max_examples": args.baseline_examples}},
        "tracking": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}", "experiment": "real-data-matrix"},
    }
    if spec["format"] == "classification":
        config["data"]["labels"] = sorted({r["label"] for r in rows})
    if "corpus" in spec:
        config["decision"]["rag"] = {"corpus": str(DATA / spec["corpus"])}
    path = folder / "config.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    return path


def _row(name: str, config: Path, wall_s: float, returncode: int, log: str) -> dict:
    from mlflow import MlflowClient

    settings = json.loads(config.read_text())
    client = MlflowClient(settings["tracking"]["tracking_uri"])
    experiment = client.get_experiment_by_name("real-data-matrix")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    parent = next((r for r in runs if "mlflow.parentRunId" not in r.data.tags), None)
    row = {"dataset": name, "completed": returncode == 0, "wall_s": round(wall_s, 1)}
    if parent is None:
        return row | {"error": log[-600:]}
    tags, metrics = parent.data.tags, parent.data.metrics
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    curation = children.get("curation")
    counts = curation.data.metrics if curation else {}
    main = next((m for m in ("accuracy", "rougeL") if f"finetuned_{m}" in metrics or f"base_{m}" in metrics), None)
    forgetting = children.get("forgetting")
    m = forgetting.data.metrics if forgetting else {}
    pooled = {k: m.get(f"pooled_{k}") for k in ("difference", "low", "high", "margin", "n", "before", "after")}
    attempts = [
        {"attempt": r.info.run_name, "changes": r.data.params.get("mitigation"),
         "forgetting": r.data.tags.get("tunesmith.forgetting"),
         "change": {k: r.data.metrics.get(f"forgetting_pooled_{k}") for k in ("difference", "low", "high")},
         "finetuned": r.data.metrics.get(f"finetuned_{main}") if main else None}
        for r in sorted(children.values(), key=lambda r: r.info.run_name) if r.info.run_name.startswith("attempt-")
    ]  # fmt: skip
    training = children.get("training")
    decision = children.get("decision")
    found = (decision.data.metrics if decision else {}).items()
    baselines = {k: v for k, v in found if k.startswith("baseline_") and main and k.endswith(f"_{main}")}
    return (
        row
        | {
            "read": int(counts.get("read", 0)),
            "kept": int(counts.get("kept_unique", 0)),
            "rejected": int(counts.get("rejected_invalid", 0)),
            "decision": tags.get("tunesmith.decision"),
            "method": tags.get("tunesmith.method"),
            "metric": main,
            "base": metrics.get(f"base_{main}") if main else None,
            "finetuned": metrics.get(f"finetuned_{main}") if main else None,
            "best_baseline": max(baselines.values(), default=None),
            "forgetting": forgetting.data.tags.get("tunesmith.forgetting") if forgetting else None,
            "forgetting_pooled": pooled if forgetting else None,
            "suite": (
                children.get("forgetting-baseline").data.params.get("suite")
                if children.get("forgetting-baseline")
                else None
            ),  # fmt: skip
            "mitigation": attempts,
            "verdict": tags.get("tunesmith.forgetting"),
            "tokens_per_s": training.data.metrics.get("tokens_per_s") if training else None,
            "outcome": tags.get("tunesmith.outcome", "")[:160],
            "report": bool(children.get("report")),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=None, help="training.batch_size (default: Tunesmith's)")
    parser.add_argument("--eval-examples", type=int, default=60)
    parser.add_argument("--baseline-examples", type=int, default=40)
    parser.add_argument("--work", default=str(REPO / "runs" / "real_data_matrix"))
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs {DATA}")
    work = Path(args.work)
    output = RESULTS / "real_data_matrix.json"
    # Rows of datasets not run this time are kept from the last run, so one dataset can be rerun alone.
    earlier = json.loads(output.read_text())["rows"] if output.is_file() else []
    rows = [r for r in earlier if r["dataset"] not in args.datasets.split(",")]
    for name in args.datasets.split(","):
        config = prepare(name, DATASETS[name], work, args)
        start = time.perf_counter()
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the config's store wins
        done = subprocess.run([str(CLI), "run", str(config)], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        (config.parent / "console.log").write_text(done.stdout + done.stderr, encoding="utf-8")
        settings = {k: getattr(args, k) for k in ("rows", "steps", "batch_size", "eval_examples", "baseline_examples")}
        rows.append(_row(name, config, wall, done.returncode, done.stdout + done.stderr) | {"settings": settings})
        print(json.dumps(rows[-1]), flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        rows.sort(key=lambda r: list(DATASETS).index(r["dataset"]))
        output.write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=2))
    print("| dataset | read | kept | rejected | decision | method | metric | base | fine-tuned | forgetting (first "
          "training) | mitigation | gates judged | wall s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        print(f"| {r['dataset']} | {r.get('read')} | {r.get('kept')} | {r.get('rejected')} | {r.get('decision')} | "
              f"{r.get('method')} | {r.get('metric')} | {fmt(r.get('base'))} | {fmt(r.get('finetuned'))} | "
              f"{_verdict(r.get('forgetting'), r.get('forgetting_pooled'))} | "
              f"{_attempts(r.get('mitigation'))} | "
              f"{r.get('verdict') or '-'} | {r['wall_s']} |")  # fmt: skip


def _attempts(attempts: list[dict] | None) -> str:
    return "; ".join(_verdict(f"{a['changes']}: {a['forgetting']}", a["change"]) for a in attempts or []) or "-"


def _verdict(verdict: str | None, change: dict | None) -> str:
    if not verdict or not change or change.get("difference") is None:
        return verdict or "-"
    n = f" on {int(change['n'])}" if change.get("n") else ""
    return (f"{verdict} {100 * change['difference']:+.1f} pts [{100 * change['low']:+.1f}, "
            f"{100 * change['high']:+.1f}]{n}")  # fmt: skip


if __name__ == "__main__":
    main()
