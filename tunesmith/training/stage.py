"""The training stage as a plain function: one method trained on the curated splits, resumable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tunesmith.config import RunConfig
from tunesmith.config.schema import TrainingConfig
from tunesmith.prompts import training_prompt
from tunesmith.records import CuratedData, PreparedModel, TrainedModel
from tunesmith.training.sft import train_model


def training_settings(config: RunConfig, data: CuratedData) -> TrainingConfig:
    """config.training with max_seq_length as curation settled it (set, or derived from the data)."""
    return config.training.model_copy(update={"max_seq_length": data.max_seq_length})


def checkpoint_dir(config: RunConfig, data: CuratedData, model: PreparedModel, method: str) -> Path:
    """Where an interrupted run of the same config, data and model leaves checkpoints for the next one."""
    key = json.dumps(
        {"model": model.path, "method": method, "training": training_settings(config, data).model_dump(mode="json"),
         "prompt": training_prompt(config), "data": data.data_hash},
        sort_keys=True,
    )  # fmt: skip
    return (
        Path(config.output_dir).resolve()
        / "checkpoints"
        / f"{config.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    )


def run_training(
    config: RunConfig, data: CuratedData, model: PreparedModel, method: str, out_dir: Path, run_id: str
) -> TrainedModel:
    """Train `method` on the curated splits; an interrupted attempt with the same inputs is resumed."""
    return train_model(
        model.path,
        data.train_path,
        data.validation_path,
        training_prompt(config),
        training_settings(config, data),
        method,
        model.precision,
        out_dir,
        model.trust_remote_code,
        checkpoint_dir=checkpoint_dir(config, data, model, method),
        manifest={"labels": data.labels, "data_hash": data.data_hash, "run_id": run_id, "model_spec": config.model},
    )
