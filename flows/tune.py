"""tune: check inputs -> curate -> method (training.method, or the decision's) -> forgetting baseline (when the
objective weighs forgetting) -> hyperparameter search (`tunesmith tune`)."""

from __future__ import annotations

from prefect import flow

from tunesmith.config import RunConfig, load_config
from tunesmith.console import progress
from tunesmith.errors import UsageError
from tunesmith.quiet import quiet_libraries
from tunesmith.search.study import SearchResult
from tunesmith.stages import Stage, in_order
from tunesmith.tasks.curation import curate_task
from tunesmith.tasks.decision import decide_task, plan_task
from tunesmith.tasks.forgetting import benchmark_base_task
from tunesmith.tasks.models import prepare_model_task
from tunesmith.tasks.orchestration import record_failure
from tunesmith.tasks.retraining import check_inputs_task
from tunesmith.tasks.search import search_hyperparameters
from tunesmith.tracking.pipeline_run import pipeline_run
from tunesmith.training.plan import TrainingPlan

DEFAULT_TRIALS = 12  # what `tunesmith tune` runs when training.search.trials is not set


def tune_stages(config: RunConfig) -> list[Stage]:
    decide = [Stage.DECISION] if config.training.method == "auto" else []
    baseline = [Stage.FORGETTING_BASELINE] if weighs_forgetting(config) else []
    return in_order([Stage.FINGERPRINT, Stage.MODEL, Stage.CURATION, *decide, *baseline, Stage.SEARCH])


def weighs_forgetting(config: RunConfig) -> bool:
    return config.training.search.objective != "metric"


@flow(name="tune-hyperparameters", on_failure=[record_failure], on_crashed=[record_failure])
def tune_hyperparameters(config_path: str, overrides: list[str] | None = None) -> SearchResult:
    quiet_libraries()
    config = load_config(config_path, overrides)
    if not config.training.search.trials:
        config = load_config(config_path, [f"training.search.trials={DEFAULT_TRIALS}", *(overrides or [])])
    progress.plan(tune_stages(config))
    with pipeline_run(config, kind="search", experiment=f"{config.tracking.experiment}-search") as run:
        inputs = check_inputs_task(run, config)
        model = prepare_model_task(run, config)
        data = curate_task(run, config, model, inputs.data)
        if config.training.method == "auto":
            decision = decide_task(run, config, data, model)
            if decision.training_plan is None:
                raise UsageError(
                    f"the decision stage recommends {decision.decision.replace('_', ' ')}, not fine-tuning, so it "
                    "chose no method to search", "training.method", "set training.method to search one anyway",
                )  # fmt: skip
            plan = TrainingPlan.from_json(decision.training_plan)
        else:
            plan = plan_task(config, data, model, config.training.method)
        before = benchmark_base_task(run, config, model, [plan.method]) if weighs_forgetting(config) else None
        return search_hyperparameters(run, config, data, model, plan, before)
