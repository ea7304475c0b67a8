from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.records import CuratedData, PreparedModel, TrainedModel
from tunesmith.retraining.continual import Champion, continual_train, from_champion
from tunesmith.stages import Stage
from tunesmith.tasks.orchestration import HOUR, training_slot
from tunesmith.tracking.datasets import log_datasets, split_datasets
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
from tunesmith.tracking.plan import log_plan
from tunesmith.tracking.registration import register_training
from tunesmith.training.plan import TrainingPlan
from tunesmith.training.stage import run_training


def _what(plan: TrainingPlan) -> str:
    """The method, and the objective when it is not supervised: "lora", "lora, dpo"."""
    objective = plan.training.get("objective", "sft")
    return plan.method if objective == "sft" else f"{plan.method}, {objective}"


@task(name="train", timeout_seconds=24 * HOUR)
def train_task(
    run: RunRef, config: RunConfig, plan: TrainingPlan, data: CuratedData, model: PreparedModel,
    champion: Champion | None = None,
) -> TrainedModel:  # fmt: skip
    """`champion`: continue its weights on the new training examples and a replay sample of its own (the version
    is still registered with every split, old examples included: the next continuation knows what it saw)."""
    with (
        stage_run(run, Stage.TRAINING, _what(plan)) as stage,
        training_slot(model.precision.device, config.orchestration.training_slot) as waited,
    ):
        log_metrics(stage, {"waited_for_training_slot_s": waited})
        trained_on = data
        if champion is not None:
            plan = from_champion(plan, champion)
            settings = config.retraining
            trained_on, counts = continual_train(data, champion, settings.replay_fraction, config.data.seed,
                                                 Path(stage.out_dir) / "continual")  # fmt: skip
            log_params(stage, {"start_from": champion.label, **{f"continual_{k}": v for k, v in counts.items()}})
        trained = run_training(config, plan, trained_on, model, Path(stage.out_dir), run.run_id)
        log_params(stage, trained.hyperparameters)
        log_plan(stage, plan)
        set_tags(
            stage,
            {
                "tunesmith.method": trained.method,
                "tunesmith.objective": trained.hyperparameters.get("objective", "sft"),
                "tunesmith.precision": trained.precision,
                "tunesmith.precision_reason": model.precision.reason,
                "tunesmith.data_hash": data.data_hash,
            },
        )
        if trained.reused:
            set_tags(stage, {"tunesmith.reused_training_of_run": trained.trained_in_run or ""})
        log_metrics(stage, trained.metrics)
        log_datasets(stage, split_datasets(trained_on, config.name, only=("train", "validation")))
        log_history(stage, trained.history, ("loss", "eval_loss", "learning_rate"))
        log_json(stage, trained.history, "loss_history.json")
        if trained.loss_curve_path:
            log_artifact(stage, trained.loss_curve_path)
        launched = Path(stage.out_dir) / "distributed"
        if launched.is_dir():  # the job's spec, accelerate config, per-rank reports, node commands and log
            log_artifact(stage, str(launched), "distributed")
        version = register_training(stage, config, data, trained, run.run_id)
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
        continued = f"; continued {champion.label} on {trained_on.counts['train']} examples" if champion else ""
        progress.done(trained.headline() + continued)
    return trained
