"""Two-step retraining: continue the champion on what arrived, or retrain the base model on everything?

Usage: python benchmarks/continual_retraining.py [--split labels|rows] [--intents 30] [--per-intent 40]
       [--epochs 2] [--replay 0.5,0.2] [--work runs/continual_retraining]

The data is a clinc150 slice (--intents intents drawn with a fixed seed, --per-intent training rows each, every test
row of those intents), cut in two halves:
- labels: the first half of the intents, then the second half arriving (an assistant that learns new intents;
  the old task is the first intents' test rows, the new task the others');
- rows: the first half of every intent's rows, then the second half (more of the same; the old and new tasks are
  then the same test rows).
Step 1 is `tunesmith run` on the first half (test: the first half's test rows), promoted to champion (the alias is
set by hand when the gate keeps it back, so that step 2 always has one to continue). Step 2 runs on all the data
(test: every test row) from copies of step 1's MLflow store: retraining.start_from: champion at each --replay
share, and retraining.start_from: base. Each arm reports its wall time (run and training), training examples and
steps, the score on the new task's and the old task's test rows with Wilson intervals, the paired difference from
the base arm on the same rows, and, for a continued arm, the forgetting gate's old-task row.
Writes benchmarks/results/continual_retraining-<split>.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = REPO.parent / "shared" / "data" / "clinc150"
CLI = Path(sys.executable).parent / "tunesmith"


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def halves(split: str, intents: int, per_intent: int, data: Path = DATA) -> dict:
    """{"labels", "old_labels", "first", "all", "first_test", "test"}: rows of the clinc150 slice."""
    train, test = _read(data / "train.jsonl"), _read(data / "test.jsonl")
    labels = sorted(random.Random(7).sample(sorted({r["label"] for r in train} - {"oos"}), intents))
    rows = {label: [r for r in train if r["label"] == label][:per_intent] for label in labels}
    tests = [{"text": r["text"], "label": r["label"]} for r in test if r["label"] in rows]
    if split == "labels":
        old = labels[: intents // 2]
        first = [r for label in old for r in rows[label]]
        first_test = [r for r in tests if r["label"] in old]
    else:
        old = labels
        first = [r for label in labels for r in rows[label][: per_intent // 2]]
        first_test = tests
    everything = [r for label in labels for r in rows[label]]
    strip = lambda found: [{"text": r["text"], "label": r["label"]} for r in found]  # noqa: E731
    return {"labels": labels, "old_labels": old, "first": strip(first), "all": strip(everything),
            "first_test": first_test, "test": tests}  # fmt: skip


def config_for(
    folder: Path, data: Path, test: Path, labels: list[str], epochs: int, start_from: str, replay: float = 0.5
) -> Path:
    config = {
        "name": "clinc-continual",
        "output_dir": str(folder / "runs"),
        "data": {"path": str(data), "test_path": str(test), "format": "classification", "labels": labels},
        "training": {"epochs": epochs},
        "retraining": {"start_from": start_from, "skip_unchanged": False, "replay_fraction": replay},
        "tracking": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}", "experiment": "continual"},
        # the standard tier, named: every arm is judged on the same 1,016 general questions
        "forgetting": {"tier": "standard", "mitigation": {"enabled": False}},
    }
    return _write_config(folder / "config.yaml", config)


def _write_config(path: Path, config: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    return path


def run(config: Path) -> dict:
    """`tunesmith run` as a user runs it: its wall time and output folder (kept in run.json beside the config, so
    that a rerun of the benchmark goes on from the steps already done)."""
    record = config.parent / "run.json"
    if record.is_file():
        return json.loads(record.read_text(encoding="utf-8"))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    start = time.perf_counter()
    done = subprocess.run([str(CLI), "run", str(config)], capture_output=True, text=True, env=env, cwd=REPO)
    console = done.stdout + done.stderr
    (config.parent / "console.log").write_text(console, encoding="utf-8")
    if done.returncode != 0:
        raise SystemExit(f"{config} failed:\n{console[-3000:]}")
    found = re.search(r"^\s*outputs\s+(\S+)", console, re.MULTILINE)  # the Result block's line
    done = {"wall_s": round(time.perf_counter() - start, 1), "out_dir": found.group(1) if found else ""}
    record.write_text(json.dumps(done), encoding="utf-8")
    return done


def measured(folder: Path, out_dir: str, old_labels: list[str]) -> dict:
    """Scores on the old and the new task's test rows, from the run's predictions; training figures and the
    forgetting gate's old-task row from its MLflow runs."""
    from mlflow import MlflowClient

    from tunesmith.evaluation.metrics import score_interval

    predictions = _read(Path(out_dir) / "evaluation" / "test_predictions.jsonl")
    row: dict = {}
    for task, rows in (("old", [p for p in predictions if p["reference"] in old_labels]),
                       ("new", [p for p in predictions if p["reference"] not in old_labels])):  # fmt: skip
        if rows:
            right = [float(p["finetuned_correct"]) for p in rows]
            low, high = score_interval("classification", right)
            row[f"{task}_task"] = {"n": len(right), "score": sum(right) / len(right), "low": low, "high": high,
                                   "ids": [p["id"] for p in rows], "correct": right}  # fmt: skip
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("continual")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = {r.data.tags.get("tunesmith.stage"): r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}  # fmt: skip
    training = children["training"].data
    row |= {"outcome": parent.data.tags.get("tunesmith.outcome", ""), "train_s": training.metrics.get("wall_s"),
            "steps": int(training.metrics.get("steps", 0)),
            "train_examples": _train_examples(training, children["curation"].data),
            "start_from": training.params.get("start_from", "base")}  # fmt: skip
    forgetting = children.get("forgetting")
    if forgetting is not None:
        m = forgetting.data.metrics
        row["general"] = {k: m.get(f"pooled_{k}") for k in ("before", "after", "difference", "low", "high", "n")}
        row["forgetting"] = forgetting.data.tags.get("tunesmith.forgetting")
        if "old_task_n" in m:
            row["old_task_gate"] = {k: m.get(f"old_task_{k}") for k in ("before", "after", "difference", "low",
                                                                          "high", "margin", "n")}  # fmt: skip
    return row


def _train_examples(training, curation) -> int:
    params = training.params
    if "continual_new" in params:
        return sum(int(params[f"continual_{k}"]) for k in ("new", "general", "replayed"))
    return int(curation.metrics["train"])


def paired(a: dict, b: dict) -> dict:
    """Continued - from base on the same test rows: McNemar's test and Tango's interval."""
    from tunesmith.statistics.paired import paired_proportions

    index = {i: c for i, c in zip(b["ids"], b["correct"], strict=True)}
    before = [index[i] > 0.5 for i in a["ids"]]
    after = [c > 0.5 for c in a["correct"]]
    difference = paired_proportions(before, after)
    return {k: getattr(difference, k) for k in ("n", "difference", "low", "high", "p_value")}


def table(result: dict) -> str:
    def score(s: dict | None) -> str:
        return "-" if not s else f"{s['score']:.3f} [{s['low']:.3f}, {s['high']:.3f}] (n={s['n']})"

    lines = ["| arm | start from | training examples | steps | training s | run s | new task | old task | "
             "old-task gate (champion -> new) | forgetting | outcome |", "|" + "---|" * 11]  # fmt: skip
    for arm, r in result.items():
        if arm == "champion_minus_base":
            continue
        gate = r.get("old_task_gate")
        gate_text = f"{gate['before']:.3f} -> {gate['after']:.3f}, {100 * gate['difference']:+.1f} " \
                    f"[{100 * gate['low']:+.1f}, {100 * gate['high']:+.1f}]" if gate else "-"  # fmt: skip
        lines.append(f"| {arm} | {r['start_from']} | {r['train_examples']} | {r['steps']} | {r['train_s']:.0f} | "
                     f"{r['wall_s']:.0f} | {score(r.get('new_task'))} | {score(r.get('old_task'))} | {gate_text} | "
                     f"{r.get('forgetting', '-')} | {r['outcome'][:40]} |")  # fmt: skip
    for task, d in result["champion_minus_base"].items():
        interval = f"[{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
        lines.append(f"\n{task} task, continued - from base on the same {d['n']} rows: "
                     f"{100 * d['difference']:+.1f} points {interval}, McNemar p = {d['p_value']:.2g}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", choices=("labels", "rows"), default="labels")
    parser.add_argument("--intents", type=int, default=30)
    parser.add_argument("--per-intent", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--replay", default="0.5,0.2", help="retraining.replay_fraction of each continued arm")
    parser.add_argument("--work", default=str(REPO / "runs" / "continual_retraining"))
    parser.add_argument("--data", default=str(DATA), help="the clinc150 folder (train.jsonl, test.jsonl)")
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        raise SystemExit(f"{args.data} not found: this benchmark reads the shared clinc150 data (--data)")
    work = Path(args.work) / args.split
    data = halves(args.split, args.intents, args.per_intent, Path(args.data))
    files = {name: _write(data[name], work / "data" / f"{name}.jsonl") for name in ("first", "all", "first_test",
                                                                                  "test")}  # fmt: skip
    old_labels = data["old_labels"]
    step1 = work / "step1"
    first_labels = old_labels if args.split == "labels" else data["labels"]
    done = run(config_for(step1, files["first"], files["first_test"], first_labels, args.epochs, "base"))
    result = {"step1": done | measured(step1, done["out_dir"], old_labels)}
    if result["step1"]["outcome"] != "Promoted":
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{step1 / 'mlflow.db'}")
        version = max(int(v.version) for v in client.search_model_versions("name = 'clinc-continual'"))
        client.set_registered_model_alias("clinc-continual", "champion", version)
        result["step1"]["alias_set_by_hand"] = True
    arms = [(f"champion-replay{r:g}", "champion", r) for r in map(float, args.replay.split(","))] + [
        ("base", "base", 0.5)
    ]
    for arm, start_from, replay in arms:
        folder = work / arm
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "run.json").is_file():  # a finished arm keeps its own runs
            shutil.copy(step1 / "mlflow.db", folder / "mlflow.db")  # the registry as step 1 left it
        done = run(config_for(folder, files["all"], files["test"], data["labels"], args.epochs, start_from, replay))
        result[arm] = done | measured(folder, done["out_dir"], old_labels)
    result["champion_minus_base"] = {
        f"{arm} {task}": paired(result[arm][f"{task}_task"], result["base"][f"{task}_task"])
        for arm, start_from, _ in arms if start_from == "champion"
        for task in ("old", "new") if f"{task}_task" in result[arm]
    }  # fmt: skip
    text = table(result)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"continual_retraining-{args.split}.json"
    out.write_text(json.dumps({"args": vars(args), "result": result, "table": text}, indent=2), encoding="utf-8")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
