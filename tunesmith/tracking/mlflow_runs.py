"""MLflow bookkeeping: one parent run per pipeline run, one nested child run per stage.

Everything goes through an explicit MlflowClient and run ids rather than MLflow's thread-local "active
run", so stages may run in worker threads or processes without losing their parent.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from tunesmith.console import progress
from tunesmith.profiling import measure

MAX_PARAM_LENGTH = 6000


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"training": {"lora": {"r": 16}}} -> {"training.lora.r": "16"}"""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


@dataclass(frozen=True)
class RunRef:
    """What a stage needs to log into a run: the store, the run id and the run's output folder."""

    uri: str
    run_id: str
    experiment_id: str
    out_dir: str

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.uri)

    def stage_dir(self, stage: str) -> Path:
        path = Path(self.out_dir) / stage
        path.mkdir(parents=True, exist_ok=True)
        return path


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        # Keep artifacts beside the local database rather than in whatever folder a later run starts from.
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    # Without a kind, MLflow 3's UI opens experiments in its GenAI (tracing) view rather than the runs table.
    kind = {"mlflow.experimentKind": "custom_model_development"}
    return client.create_experiment(name, artifact_location=location, tags=kind)


def start_run(
    uri: str,
    experiment: str,
    run_name: str,
    out_dir: Path,
    parent: RunRef | None = None,
    tags: dict[str, str] | None = None,
) -> RunRef:
    client = MlflowClient(uri)
    exp_id = parent.experiment_id if parent else experiment_id(client, experiment, uri)
    all_tags = {MLFLOW_RUN_NAME: run_name, **(tags or {})}
    if parent:
        all_tags[MLFLOW_PARENT_RUN_ID] = parent.run_id
    run = client.create_run(exp_id, tags=all_tags, run_name=run_name)
    return RunRef(uri=uri, run_id=run.info.run_id, experiment_id=exp_id, out_dir=str(out_dir))


def end_run(ref: RunRef, failed: bool = False) -> None:
    status = RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED)
    ref.client.set_terminated(ref.run_id, status=status)


@contextmanager
def stage_run(parent: RunRef, stage: str, detail: str = "") -> Iterator[RunRef]:
    """A nested child run for one stage, with its wall time and peak memory; FAILED if the stage raises.
    The stage is reported on the console too, with `detail` (e.g. the training method) beside its name."""
    with progress.stage(stage, detail):
        child = start_run(
            parent.uri, "", stage, Path(parent.out_dir) / stage, parent=parent, tags={"tunesmith.stage": stage}
        )
        Path(child.out_dir).mkdir(parents=True, exist_ok=True)
        failed = False
        try:
            with measure() as usage:
                yield child
        except BaseException:
            failed = True
            raise
        finally:
            log_metrics(
                child,
                {
                    "stage_wall_s": usage.wall_s,
                    "stage_peak_rss_mb": usage.peak_rss_mb,
                    "stage_start_rss_mb": usage.start_rss_mb,
                    "stage_peak_gpu_mb": usage.peak_gpu_mb,
                },
            )
            end_run(child, failed=failed)


def log_params(ref: RunRef, params: dict[str, Any]) -> None:
    flat = flatten(params)
    items = [Param(k, v) for k, v in flat.items()]
    for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
        ref.client.log_batch(ref.run_id, params=items[start : start + 100])


# What MLflow accepts in a metric name on every store: letters, digits, underscore, dash, period, space, slash.
_NOT_IN_METRIC_NAMES = re.compile(r"[^A-Za-z0-9_\-. /]")


def metric_keys(names: list[str]) -> dict[str, str]:
    """Each name -> a key MLflow accepts: other characters (?, unicode, ...) become '_', and names that would then
    collide get a numbered suffix, so per-class metrics of labels such as 'reverted_card_payment?' still log."""
    safe = {name: _NOT_IN_METRIC_NAMES.sub("_", name).strip("/") or "_" for name in names}
    keys = {name: name for name in names if safe[name] == name}  # names MLflow accepts keep them
    used = set(keys)
    for name in names:
        if name in keys:
            continue
        candidate, n = safe[name], 2
        while candidate in used:
            candidate, n = f"{safe[name]}_{n}", n + 1
        keys[name] = candidate
        used.add(candidate)
    return {name: keys[name] for name in names}


def log_metrics(ref: RunRef, metrics: dict[str, float], step: int = 0) -> None:
    """Metrics under keys MLflow accepts; renamed ones are listed (key -> original name) in metric_names/."""
    now = int(time.time() * 1000)
    values = {k: v for k, v in metrics.items() if v is not None}
    keys = metric_keys(list(values))
    items = [Metric(keys[k], float(v), now, step) for k, v in values.items()]
    for start in range(0, len(items), 1000):
        ref.client.log_batch(ref.run_id, metrics=items[start : start + 1000])
    renamed = {key: name for name, key in keys.items() if key != name}
    if renamed:
        digest = hashlib.sha256(json.dumps(renamed, sort_keys=True).encode()).hexdigest()[:12]
        ref.client.log_dict(ref.run_id, renamed, f"metric_names/{digest}.json")


def log_history(ref: RunRef, history: list[dict[str, float]], keys: tuple[str, ...]) -> None:
    """Per-step series (e.g. loss curves) as MLflow metrics with steps, so the UI draws them."""
    now = int(time.time() * 1000)
    items = [Metric(k, float(row[k]), now, int(row.get("step", 0))) for row in history for k in keys if k in row]
    for start in range(0, len(items), 1000):
        ref.client.log_batch(ref.run_id, metrics=items[start : start + 1000])


def log_artifact(ref: RunRef, path: str | Path, artifact_path: str | None = None) -> None:
    path = Path(path)
    if path.is_dir():
        ref.client.log_artifacts(ref.run_id, str(path), artifact_path)
    else:
        ref.client.log_artifact(ref.run_id, str(path), artifact_path)


def log_json(ref: RunRef, data: Any, artifact_file: str) -> None:
    ref.client.log_text(ref.run_id, json.dumps(data, indent=2, default=str), artifact_file)


def log_table(ref: RunRef, rows: list[dict[str, Any]], artifact_file: str) -> None:
    if rows:
        columns = {key: [row.get(key) for row in rows] for key in rows[0]}
        ref.client.log_table(ref.run_id, data=columns, artifact_file=artifact_file)


def set_tags(ref: RunRef, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        ref.client.set_tag(ref.run_id, key, str(value))
