"""The fine-tuning methods table, measured: the compare-methods flow on a banking77 subset and the default model.

Usage: python benchmarks/method_comparison.py [--labels 8] [--per-label 50] [--test 0.3] [--methods full,lora,...]
                                              [--tag NAME] [--set key=value ...]
Takes the --labels most frequent intents of ../shared/data/banking77/train.jsonl (real bank customer queries)
and --per-label examples of each, then runs the real compare-methods flow with SmolLM2-135M-Instruct: curation
once (a --test share of the rows is the test split: 120 examples by default, so one example is under a point of
accuracy, and the table gives each accuracy's 95% Wilson interval), every method with its own defaults,
evaluation on the same test split, the forgetting benchmark, latency as trained and merged. Writes the flow's
table as benchmarks/results/method_comparison[-TAG].{md,csv,png,json} and prints it. Run it on an otherwise idle
machine: peak memory and latency are measured in this process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
BANKING77 = REPO.parent / "shared" / "data" / "banking77" / "train.jsonl"
SYSTEM = (
    "Classify the bank customer's message into exactly one of these intents: {labels}. Answer with the intent only."
)


def subset(labels: int, per_label: int, out: Path) -> list[str]:
    rows = [json.loads(line) for line in BANKING77.read_text(encoding="utf-8").splitlines() if line.strip()]
    chosen = sorted(label for label, _ in Counter(r["label"] for r in rows).most_common(labels))
    kept: dict[str, list[dict]] = {label: [] for label in chosen}
    for row in rows:
        if row["label"] in kept and len(kept[row["label"]]) < per_label:
            kept[row["label"]].append(row)
    out.write_text("".join(json.dumps(r) + "\n" for group in kept.values() for r in group), encoding="utf-8")
    return chosen


def write_config(work: Path, name: str, labels: list[str], test: float, experiment: str, extra: str = "") -> Path:
    """The run config for the banking77 subset in `work`: a `test` share of the rows as the test split."""
    config = work / "run.yaml"
    config.write_text(
        f"name: {name}\n"
        f"output_dir: {work / 'runs'}\n"
        f"data:\n  path: {work / 'banking77_subset.jsonl'}\n  labels: {json.dumps(labels)}\n"
        f"  split: {{train: {0.9 - test:.2f}, validation: 0.1, test: {test}}}\n"
        f"prompt:\n  system: {json.dumps(SYSTEM)}\n"
        f"tracking:\n  experiment: {experiment}\n  tracking_uri: sqlite:///{work / 'mlflow.db'}\n" + extra,
        encoding="utf-8",
    )
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=8)
    parser.add_argument("--per-label", type=int, default=50)
    parser.add_argument("--test", type=float, default=0.3, help="share of the rows in the test split")
    parser.add_argument("--tag", default="", help="suffix of the result files, for runs with other settings")
    parser.add_argument("--methods", default="full,lora,qlora,adapter,prefix,prompt,ia3")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    if not BANKING77.is_file():
        sys.exit(f"{BANKING77} not found: this benchmark needs the shared banking77 data")

    from tunesmith.flows.compare import compare_methods

    name = "method_comparison" + (f"-{args.tag}" if args.tag else "")
    work = RESULTS / f"{name}_work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    labels = subset(args.labels, args.per_label, work / "banking77_subset.jsonl")
    config = write_config(work, "banking77-methods", labels, args.test, "benchmark")
    start = time.perf_counter()
    out = compare_methods(str(config), args.methods.split(","), args.overrides)
    wall = time.perf_counter() - start

    table_dir = Path(out.output_dir) / "comparison"
    for suffix in ("md", "csv", "png"):
        shutil.copy(table_dir / f"comparison.{suffix}", RESULTS / f"{name}.{suffix}")
    record = {
        "data": {"source": str(BANKING77), "labels": labels, "per_label": args.per_label},
        "model": "smollm2-135m-instruct",
        "overrides": args.overrides,
        "wall_s": wall,
        "results": [r.to_json() for r in out.results],
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(out.report)
    print(f"whole comparison: {wall / 60:.1f} min; table in {RESULTS / f'{name}.md'}")


if __name__ == "__main__":
    main()
