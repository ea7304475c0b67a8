import hashlib
import json
from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.curation.curate import CuratedData
from tunesmith.models.prepared import PreparedModel
from tunesmith.prompts import system_prompt
from tunesmith.tasks.orchestration import HOUR, training_slot
from tunesmith.tracking.mlflow_runs import (
    RunRef,
    log_artifact,
    log_history,
    log_json,
    log_metrics,
    log_params,
    set_tags,
    stage_run,
)
from tunesmith.tracking.registry import register_model
from tunesmith.training.sft import TrainedModel, train_model


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


def train_on_splits(
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


@task(name="train", timeout_seconds=24 * HOUR)
def train_task(run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, method: str) -> TrainedModel:
    with (
        stage_run(run, "training", method) as stage,
        training_slot(model.precision.device, config.orchestration.training_slot) as waited,
    ):
        log_metrics(stage, {"waited_for_training_slot_s": waited})
        trained = train_on_splits(config, data, model, method, Path(stage.out_dir), run.run_id)
        log_params(stage, trained.hyperparameters)
        set_tags(
            stage,
            {
                "tunesmith.method": trained.method,
                "tunesmith.precision": trained.precision,
                "tunesmith.precision_reason": model.precision.reason,
                "tunesmith.data_hash": data.data_hash,
            },
        )
        log_metrics(stage, trained.metrics)
        log_history(stage, trained.history, ("loss", "eval_loss", "learning_rate"))
        log_json(stage, trained.history, "loss_history.json")
        if trained.loss_curve_path:
            log_artifact(stage, trained.loss_curve_path)
        log_artifact(stage, trained.output_dir, "model")
        if trained.merged_dir:
            log_artifact(stage, trained.merged_dir, "merged")
        version = register_model(
            stage,
            config.tracking.registered_model or config.name,
            "model",
            {"method": trained.method, "data_hash": data.data_hash, "base_model": config.model,
             "precision": trained.precision, "pipeline_run_id": run.run_id},
        )  # fmt: skip
        trained.registered = {"name": version.name, "version": version.version}
        set_tags(stage, {"tunesmith.registered_model": f"{version.name}/{version.version}"})
        set_tags(run, {"tunesmith.trained": "true", "tunesmith.model_version": f"{version.name}/{version.version}"})
        m = trained.metrics
        create_table_artifact(
            key="training",
            table=[{"method": trained.method, "precision": trained.precision, "steps": int(m["steps"]),
                    "trainable %": round(m["trainable_pct"], 4), "tokens/s": round(m["tokens_per_s"], 1),
                    "peak RSS MB": round(m["peak_rss_mb"]), "best validation loss": round(m["best_eval_loss"], 4),
                    "model version": f"{version.name}/{version.version}"}],
            description="Training run",
        )  # fmt: skip
        progress.done(trained.headline())
    return trained
