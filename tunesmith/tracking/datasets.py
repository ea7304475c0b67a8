"""The data a run used, as MLflow datasets: the curated examples, each split and the forgetting benchmarks, each
with its digest and a source pointing at its file, so that runs show them in the Dataset column and can be
compared by what they were trained and tested on."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from mlflow.entities import DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from tunesmith.records import CuratedData
from tunesmith.tracking.mlflow_runs import RunRef

SPLITS = {"train": "training", "validation": "validation", "test": "test"}  # split -> MLflow's context name


def _table(paths: list[Path]) -> pd.DataFrame:
    """JSONL rows as a table; nested values (chat messages, answer choices) as JSON text, which MLflow can hash."""
    rows = [json.loads(line) for path in paths for line in path.read_text(encoding="utf-8").splitlines() if line]
    return pd.DataFrame(
        [{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()} for row in rows]
    )


def file_dataset(paths: list[Path] | Path, name: str, source: Path | None = None):
    import mlflow.data

    paths = [paths] if isinstance(paths, Path) else paths
    return mlflow.data.from_pandas(_table(paths), source=str((source or paths[0]).resolve()), name=name)


def split_datasets(data: CuratedData, run_name: str) -> dict[str, object]:
    """{"curated" | "train" | "validation" | "test": dataset}, named <run name>-<split>."""
    files = {"train": Path(data.train_path), "validation": Path(data.validation_path), "test": Path(data.test_path)}
    datasets = {split: file_dataset(path, f"{run_name}-{split}") for split, path in files.items()}
    datasets["curated"] = file_dataset(list(files.values()), f"{run_name}-curated", Path(data.train_path).parent)
    return datasets


def benchmark_datasets(suite: dict) -> dict[str, object]:
    """The forgetting suite's local benchmark files (lm-eval's own hub tasks have no file here)."""
    return {f"benchmark-{b.name}": file_dataset(Path(b.path), b.name) for b in suite["benchmarks"]}


def log_datasets(ref: RunRef, datasets: dict[str, object]) -> None:
    """Log each dataset as an input of the run, under its context (training, validation, test, or its key).
    The client takes dataset entities: mlflow.log_input converts the same way but needs the thread's active run."""
    inputs = [
        DatasetInput(dataset._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, SPLITS.get(key, key))])
        for key, dataset in datasets.items()
    ]
    ref.client.log_inputs(ref.run_id, datasets=inputs)
