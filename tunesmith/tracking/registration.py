"""When a training becomes a model version, and with what: the registration policy of the training stage."""

from __future__ import annotations

from pathlib import Path

from tunesmith.config import RunConfig
from tunesmith.curation.records import read_examples
from tunesmith.records import CuratedData, TrainedModel
from tunesmith.serving.package import log_model
from tunesmith.tracking.mlflow_runs import RunRef, log_artifact
from tunesmith.tracking.registry import RegisteredVersion, existing_version, register_model
from tunesmith.training.stage import save_record

DATA_ARTIFACTS = "data"  # the version's curated splits, under its run (retraining/continual.py reads them back)


def register_training(
    stage: RunRef, config: RunConfig, data: CuratedData, trained: TrainedModel, run_id: str
) -> RegisteredVersion:
    """The version a reused training already has, if the registry still holds it; else a new version of the
    registered model (tracking.registered_model, default the run's name) logged from the trained folder, with the
    merged copy attached, and recorded beside the training so that a rerun does not register it twice."""
    version = existing_version(stage, trained.registered)
    if version is not None:
        return version
    if trained.merged_dir:
        log_artifact(stage, trained.merged_dir, "merged")
    tags = {"method": trained.method, "data_hash": data.data_hash, "base_model": config.model,
            "precision": trained.precision, "pipeline_run_id": trained.trained_in_run or run_id}  # fmt: skip
    for split in (data.train_path, data.validation_path, data.test_path):  # what a continued retraining keeps
        log_artifact(stage, split, DATA_ARTIFACTS)
    logged = log_model(stage, trained.output_dir, example_prompt(data), tags)
    version = register_model(stage, config.tracking.registered_model or config.name, logged, tags)
    trained.registered = {"name": version.name, "version": version.version, "model_id": version.model_id}
    save_record(trained)
    return version


def example_prompt(data: CuratedData) -> str:
    """The first test example's question: the input example MLflow shows with the model and checks it answers."""
    (first, *_) = read_examples(Path(data.test_path)) or read_examples(Path(data.train_path))
    return next(m["content"] for m in first.messages if m["role"] == "user")
