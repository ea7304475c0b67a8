"""The training stage as a plain function: one method trained on the curated splits, resumable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tunesmith.config import RunConfig
from tunesmith.prompts import system_prompt
from tunesmith.records import CuratedData, PreparedModel, TrainedModel
from tunesmith.training.sft import train_model


def checkpoint_dir(config: RunConfig, data: CuratedData, model: PreparedModel, method: str) -> Path:
    """Where an interrupted run of the same config, data and model leaves checkpoints for the next one."""
    key = json.dumps(
        {"model": model.path, "method": method, "training": config.training.model_dump(mode="json"),
         "prompt": config.prompt.system, "data": data.data_hash},
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
        system_prompt(config.prompt.system, data.labels),
        config.training,
        method,
        model.precision,
        out_dir,
        model.trust_remote_code,
        checkpoint_dir=checkpoint_dir(config, data, model, method),
        manifest={"labels": data.labels, "data_hash": data.data_hash, "run_id": run_id, "model_spec": config.model},
    )
