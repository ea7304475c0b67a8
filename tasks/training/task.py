from pathlib import Path

from prefect import task

from tasks.config import RunConfig
from tasks.curation.curate import CuratedData
from tasks.models.prepared import PreparedModel
from tasks.prompts import system_prompt
from tasks.tracking.mlflow_runs import (
    RunRef,
    log_artifact,
    log_history,
    log_json,
    log_metrics,
    log_params,
    set_tags,
    stage_run,
)
from tasks.training.sft import TrainedModel, train_model


@task(name="train")
def train_task(run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, method: str) -> TrainedModel:
    with stage_run(run, "training") as stage:
        trained = train_model(
            model.path,
            data.train_path,
            data.validation_path,
            system_prompt(config.prompt.system, data.labels),
            config.training,
            method,
            model.precision,
            Path(stage.out_dir),
            model.trust_remote_code,
        )
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
    return trained
