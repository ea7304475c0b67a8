"""Run the demo configuration end to end and report each stage's wall time and peak memory.

Usage: python benchmarks/pipeline_stages.py [CONFIG] [--set key=value ...]
Writes benchmarks/results/pipeline_stages.json and prints a table. The pipeline runs in a fresh
process through the `tunesmith` command, exactly as a user runs it; per-stage figures are read back
from the MLflow child runs, where every stage records them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
STAGES = ["curation", "decision", "forgetting-baseline", "training", "evaluation", "forgetting", "report"]


def main(argv: list[str]) -> int:
    config = argv[0] if argv and not argv[0].startswith("--") else "configs/quickstart.yaml"
    overrides = argv[1:] if argv and not argv[0].startswith("--") else argv
    workdir = Path(tempfile.mkdtemp(prefix="tunesmith-bench-"))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    env = os.environ | {"MLFLOW_TRACKING_URI": uri}
    command = [
        str(Path(sys.executable).parent / "tunesmith"),
        "run",
        str(REPO / config),
        "--set",
        f"output_dir={workdir / 'runs'}",
        *overrides,
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True)
    total = time.perf_counter() - start

    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    stages = {r.info.run_name: r.data.metrics for r in runs if "mlflow.parentRunId" in r.data.tags}
    rows = [
        {
            "stage": name,
            "wall_s": round(m["stage_wall_s"], 1),
            "peak_rss_mb": round(m["stage_peak_rss_mb"]),
            "rss_growth_mb": round(m["stage_peak_rss_mb"] - m["stage_start_rss_mb"]),
        }
        for name in STAGES
        if (m := stages.get(name))
    ]
    result = {
        "config": config,
        "overrides": overrides,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "total_wall_s": round(total, 1),
        "stages": rows,
        "headline": {
            k: round(v, 4)
            for k, v in parent.data.metrics.items()
            if k.startswith(("base_", "finetuned_", "forgetting_", "train_wall", "train_tokens"))
        },
        "precision": parent.data.tags.get("tunesmith.precision"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "pipeline_stages.json"
    out.write_text(json.dumps(result, indent=2))

    print(f"\n{'stage':<22}{'wall s':>9}{'peak RSS MB':>14}{'RSS growth MB':>16}")
    for row in rows:
        print(f"{row['stage']:<22}{row['wall_s']:>9}{row['peak_rss_mb']:>14}{row['rss_growth_mb']:>16}")
    print(f"{'total (process)':<22}{result['total_wall_s']:>9}")
    for key, value in result["headline"].items():
        print(f"{key}: {value}")
    print(f"precision: {result['precision']}\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
