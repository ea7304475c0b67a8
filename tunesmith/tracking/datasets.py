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


def _table(path: Path) -> pd.DataFrame:
    """JSONL rows as a table; nested values (chat messages, answer choices) as JSON text, which MLflow can hash."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return pd.DataFrame(
        [{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()} for row in rows]
    )


def _dataset(table: pd.DataFrame, source: Path, name: str):
    import mlflow.data

    return mlflow.data.from_pandas(table, source=str(source.resolve()), name=name)


def file_dataset(path: Path, name: str):
    return _dataset(_table(path), path, name)


def split_datasets(data: CuratedData, run_name: str, only: tuple[str, ...] | None = None) -> dict[str, object]:
    """{"train" | "validation" | "test" | "curated" (the three together): dataset}, named <run name>-<split>;
    `only` builds just those (each split file is read once)."""
    files = {"train": Path(data.train_path), "validation": Path(data.validation_path), "test": Path(data.test_path)}
    wanted = only or (*files, "curated")
    tables = {split: _table(path) for split, path in files.items() if split in wanted or "curated" in wanted}
    datasets = {
        split: _dataset(tables[split], files[split], f"{run_name}-{split}") for split in files if split in wanted
    }
    if "curated" in wanted:
        curated = pd.concat(list(tables.values()), ignore_index=True)
        datasets["curated"] = _dataset(curated, files["train"].parent, f"{run_name}-curated")
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
