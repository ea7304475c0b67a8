"""Which training defaults keep a model from forgetting: task score and forgetting verdict per seed and setting.

Usage: python benchmarks/forgetting_defaults.py [--datasets demo,clinc150,alpaca_5k] [--settings defaults,replay,
       cautious_lr,l2_to_base] [--seeds 1,2,3] [--work runs/forgetting_defaults]

Every row is `tunesmith run` as a user runs it, in its own MLflow store (no champion from another row), with
forgetting mitigation off so that each setting is measured alone:
- defaults: the defaults this table started from, no replay (data.replay.fraction=0; replay is on by default since);
- replay: 10% general-domain replay (the bundled Dolly open-QA rows), the reference texts' first advice;
- cautious_lr: half the learning rate the defaults derive, what a pipeline that must not forget would try first;
- l2_to_base: no replay, the defaults' rate, and the L2 pull toward the base weights that the mitigation step
  `l2_to_base` would set for the defaults' rate and steps (tunesmith/forgetting/mitigation.py).
The demo is configs/quickstart.yaml on the bundled tickets (its own 109 general questions); the shared datasets are
sampled as a user would bring them and judged on the bundled standard tier (1,016 questions), named so that every
seed is judged on the same questions (tier auto would move the default model to the large tier).
Their training is capped at --steps for a CPU; every setting of a dataset gets the same cap. Rows already in the
results file are kept, so an interrupted run continues where it stopped.
Writes benchmarks/results/forgetting_defaults.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = REPO.parent / "shared" / "data"
CLI = Path(sys.executable).parent / "tunesmith"
SETTINGS = ("defaults", "replay", "cautious_lr", "l2_to_base")
FROM_DEFAULTS = ("cautious_lr", "l2_to_base")  # need the defaults row's rate and steps
EXPERIMENT = "forgetting-defaults"


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def prepare(name: str, work: Path, rows: int, steps: int) -> tuple[Path, list[str]]:
    """The config a user of this dataset would write, and the --set overrides every row of it shares."""
    if name == "demo":
        return REPO / "configs" / "quickstart.yaml", []
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data.jsonl"
    config: dict = {"name": f"defaults-{name.replace('_', '-')}", "data": {"path": str(data)}}
    if name == "clinc150":
        found = _read(DATA / "clinc150" / "train.jsonl")
        labels = sorted({r["label"] for r in found} - {"oos"})
        labels = random.Random(0).sample(labels, 15)  # a 15-intent assistant, 20 examples each
        per_label = rows // len(labels)
        random.Random(0).shuffle(found)
        sample = [r for label in labels for r in [r for r in found if r["label"] == label][:per_label]]
        config["data"] |= {"format": "classification", "labels": labels}
    else:
        found = _read(DATA / name / "train.jsonl")
        random.Random(0).shuffle(found)
        sample = found[:rows]
        config["data"] |= {"format": "instruction"}
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sample), encoding="utf-8")
    path = folder / "config.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    # The standard tier, named: tier auto would move the default model (accuracy 0.36) to the large tier, ~14 more
    # minutes per row on a CPU, and every seed must be judged on the same questions.
    # Every benchmark of the tier is gated on, as when the table started (the default model is at chance on four
    # of the five: forgetting.leave_out_at_chance would judge its 200 ARC questions alone).
    caps = [f"training.max_steps={steps}", "evaluation.max_examples=60", "decision.baselines.max_examples=40",
            "forgetting.tier=standard", "forgetting.leave_out_at_chance=false"]  # fmt: skip
    return path, caps


def result_block(console: str) -> str:
    """The console's closing block, from `Result:` to the line before the paths."""
    block = console[console.rfind("Result:") :] if "Result:" in console else console[-1500:]
    return "\n".join(line for line in block.splitlines() if not re.match(r"\s+(outputs|summary|log|MLflow)\s", line))


def measured(store: str) -> dict:
    from mlflow import MlflowClient

    from tunesmith.records import primary_metric

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    parent = next((r for r in runs if "mlflow.parentRunId" not in r.data.tags), None)
    if parent is None:
        return {}
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    row: dict = {"outcome": parent.data.tags.get("tunesmith.outcome", "")[:200]}
    if parent.info.end_time:
        row["pipeline_s"] = round((parent.info.end_time - parent.info.start_time) / 1000, 1)
    evaluation, forgetting, training = (children.get(n) for n in ("evaluation", "forgetting", "training"))
    if evaluation is not None:
        record = json.loads(Path(client.download_artifacts(evaluation.info.run_id, "evaluation.json",
                                                           tempfile.mkdtemp())).read_text())  # fmt: skip
        metric = primary_metric(record["task_type"])
        row |= {"metric": metric, "base": record["base"][metric], "finetuned": record["finetuned"][metric],
                "task_change": record.get("change") or {}}  # fmt: skip
    if forgetting is not None:
        m = forgetting.data.metrics
        row |= {
            "forgetting": forgetting.data.tags.get("tunesmith.forgetting"),
            "questions": int(m.get("pooled_n", 0)),
            "general_before": m.get("pooled_before"),
            "general_after": m.get("pooled_after"),
            "forgetting_change": {k: m.get(f"pooled_{k}") for k in ("difference", "low", "high", "margin")},
            "per_benchmark": {
                k.removesuffix("_difference"): v
                for k, v in m.items()
                if k.endswith("_difference") and not k.startswith("pooled")
            },  # fmt: skip
        }
    if training is not None:
        row |= {"steps": int(training.data.metrics.get("steps", 0)),
                "learning_rate": float(training.data.params.get("learning_rate", "nan"))}  # fmt: skip
    return row


def run_row(name: str, setting: str, seed: int, config: Path, caps: list[str], work: Path,
            defaults: dict | None) -> dict:  # fmt: skip
    folder = work / name / f"{setting}-seed{seed}"
    earlier = (folder / "console.log").read_text(encoding="utf-8") if (folder / "console.log").is_file() else ""
    if "Result:" in earlier:  # finished before the results were written
        console = earlier
        row = {"dataset": name, "setting": setting, "seed": seed, "completed": True, "wall_s": None,
               "result": result_block(console)}  # fmt: skip
        return row | measured(f"sqlite:///{folder / 'mlflow.db'}")
    folder.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{folder / 'mlflow.db'}"
    overrides = caps + [
        f"training.seed={seed}",
        "retraining.skip_unchanged=false",
        "forgetting.mitigation=off",
        f"tracking.tracking_uri={store}",
        f"tracking.experiment={EXPERIMENT}",
        # one output folder per dataset: the base model's general scores are computed once and cached there
        f"output_dir={work / name / 'runs'}",
        "data.replay.fraction=" + ("0.1" if setting == "replay" else "0"),
    ]
    if setting == "cautious_lr":
        overrides.append(f"training.learning_rate={defaults['learning_rate'] / 2:g}")
    if setting == "l2_to_base":
        from tunesmith.forgetting.mitigation import L2_TO_BASE, plan_attempts

        pull = plan_attempts([L2_TO_BASE], 1, 0.0, defaults["learning_rate"], defaults["steps"])[0]
        overrides.append(f"training.l2_to_base={pull.training['l2_to_base']:g}")
    command = [str(CLI), "run", str(config)] + [a for o in overrides for a in ("--set", o)]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - start
    console = done.stdout + done.stderr
    (folder / "console.log").write_text(console, encoding="utf-8")
    row = {"dataset": name, "setting": setting, "seed": seed, "completed": done.returncode == 0,
           "wall_s": round(wall, 1), "overrides": overrides, "result": result_block(console)}  # fmt: skip
    return row | (measured(store) if done.returncode == 0 else {"error": console[-800:]})


def _points(change: dict | None) -> str:
    if not change or change.get("difference") is None:
        return "-"
    return f"{100 * change['difference']:+.1f} [{100 * change['low']:+.1f}, {100 * change['high']:+.1f}]"


def table(rows: list[dict]) -> str:
    lines = ["| dataset | setting | seed | lr | steps | base | fine-tuned | task change (pts, 95%) | general before -> "
             "after (n) | forgetting change (pts, 95%) | verdict | wall s |", "|" + "---|" * 12]  # fmt: skip
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        general = f"{fmt(r.get('general_before'))} -> {fmt(r.get('general_after'))} ({r.get('questions', '-')})"
        lines.append(
            f"| {r['dataset']} | {r['setting']} | {r['seed']} | {r.get('learning_rate', float('nan')):.2g} | "
            f"{r.get('steps', '-')} | {fmt(r.get('base'))} | {fmt(r.get('finetuned'))} | "
            f"{_points(r.get('task_change'))} | "
            f"{general} | {_points(r.get('forgetting_change'))} | {r.get('forgetting', 'failed')} | "
            f"{r.get('wall_s') or r.get('pipeline_s')} |"
        )  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="demo,clinc150,alpaca_5k")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--steps", type=int, default=60, help="training.max_steps for the shared datasets")
    parser.add_argument("--work", default=str(REPO / "runs" / "forgetting_defaults"))
    args = parser.parse_args()
    names = args.datasets.split(",")
    if any(n != "demo" for n in names) and not DATA.is_dir():
        sys.exit(f"needs {DATA}")
    work = Path(args.work).resolve()
    output = RESULTS / "forgetting_defaults.json"
    rows = json.loads(output.read_text())["rows"] if output.is_file() else []
    done = {(r["dataset"], r["setting"], r["seed"]) for r in rows if r["completed"]}
    rows = [r for r in rows if (r["dataset"], r["setting"], r["seed"]) in done]
    # seed by seed, so that an interrupted benchmark has every dataset and setting at the first seeds
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in names:
            config, caps = prepare(name, work, args.rows, args.steps)
            for setting in args.settings.split(","):
                if (name, setting, seed) in done:
                    continue
                defaults = next((r for r in rows if r["dataset"] == name and r["setting"] == "defaults"
                                 and r.get("learning_rate") and r.get("steps")), None)  # fmt: skip
                if setting in FROM_DEFAULTS and defaults is None:
                    continue  # needs the defaults row's learning rate and steps first
                rows.append(run_row(name, setting, seed, config, caps, work, defaults))
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "result"}), flush=True)
                print(rows[-1]["result"], flush=True)
                RESULTS.mkdir(parents=True, exist_ok=True)
                output.write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=2))
    print(table(sorted(rows, key=lambda r: (r["dataset"], r["setting"], r["seed"]))))


if __name__ == "__main__":
    main()
