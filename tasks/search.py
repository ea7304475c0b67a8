"""The hyperparameter search in the flows: Optuna asks for trials, the engine trains them (one at a time, or in
parallel on the comparison engine's workers), each trial is an MLflow child run of the search's run."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

from prefect import task

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.decision.render import render_decision
from tunesmith.evaluation.test_set import load_validation_set
from tunesmith.records import CuratedData, DecisionRecord, PreparedModel, primary_metric
from tunesmith.search.loop import TrialCall, require_best, run_study, search_result, write_search
from tunesmith.search.plan import SearchPlan, plan_search
from tunesmith.search.pruning import TrialRef
from tunesmith.search.space import show_value
from tunesmith.search.study import SearchResult, TrialOutcome
from tunesmith.search.trial import run_trial
from tunesmith.stages import Stage
from tunesmith.tasks.engine import pin_worker_gpu, run_all, task_runner, worker_threads
from tunesmith.tasks.orchestration import HOUR, training_slot
from tunesmith.tracking.mlflow_runs import RunRef, log_artifact, log_metrics, log_params, set_tags, stage_run
from tunesmith.tracking.plan import log_plan
from tunesmith.training.plan import TrainingPlan, derive


@task(name="search-trial", timeout_seconds=24 * HOUR)
def search_trial_task(
    search_run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, plan: SearchPlan, metric: str,
    number: int, trial_id: int, settings: dict, before: dict | None,
) -> TrialOutcome:  # fmt: skip
    threads = worker_threads(config.comparison)
    if threads:
        import torch

        torch.set_num_threads(threads)
    # One trial per GPU where a machine has several; trials sharing a device take turns through its slot.
    device = pin_worker_gpu() or model.precision.device
    shown = ", ".join(f"{k} {show_value(v)}" for k, v in settings.items())
    slot = training_slot(device, config.orchestration.training_slot)
    with stage_run(search_run, f"trial-{number}", shown) as child, slot:
        set_tags(child, {"tunesmith.kind": "search-trial", "tunesmith.trial": number, "tunesmith.method": plan.method,
                         "tunesmith.worker": f"{socket.gethostname()} pid {os.getpid()}"})  # fmt: skip
        log_params(child, settings)
        validation = load_validation_set(config, data, config.training.search.validation_examples)
        search = config.training.search
        ref = TrialRef(plan.storage, plan.study, trial_id, search.pruner, search.startup_trials)
        outcome = run_trial(
            config, plan.plan, data, model, number, settings, ref, validation, metric, before, Path(child.out_dir),
            child.run_id,
        )  # fmt: skip
        if outcome.plan:
            log_plan(child, TrainingPlan.from_json(outcome.plan))
        log_metrics(child, outcome.metrics | {f"objective_{i}": v for i, v in enumerate(outcome.values)})
        set_tags(child, {"tunesmith.trial_state": outcome.state, "tunesmith.trial_reason": outcome.reason[:5000]})
        scored = outcome.metrics.get(f"validation_{metric}")
        progress.done(f"{outcome.state}: {outcome.reason}" if outcome.reason else f"validation {metric} {scored:.3f}")
    return replace(outcome, run_id=child.run_id)


def search_hyperparameters(
    run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, training: TrainingPlan,
    before: dict | None,
) -> SearchResult:  # fmt: skip
    """Run the study to training.search.trials finished trials (a stopped one resumes) and choose a trial; each
    trial's plan is derived from `training`."""
    settings, method = config.training.search, training.method
    with stage_run(run, Stage.SEARCH, method) as stage:
        plan = plan_search(config, data, model, training)
        validation = load_validation_set(config, data, settings.validation_examples)
        metric = primary_metric(validation.kind)
        log_params(stage, {"search.study": plan.study, "search.storage": plan.storage, "search.trials": settings.trials,
                           "search.objective": settings.objective,
                           **{f"search.space.{k}": d.describe() for k, d in plan.space.items()}})  # fmt: skip
        runner = task_runner(config.comparison)

        def run_trials(calls: list[TrialCall]) -> list[TrialOutcome]:
            kwargs = [dict(search_run=stage, config=config, data=data, model=model, plan=plan, metric=metric,
                           number=c.number, trial_id=c.trial_id, settings=c.settings, before=before)
                      for c in calls]  # fmt: skip
            states = run_all(search_trial_task, runner, kwargs)
            return [state.result() if state.is_completed()
                    else TrialOutcome(c.number, "failed", c.settings, reason=f"{state.name}: {state.message}")
                    for c, state in zip(calls, states, strict=True)]  # fmt: skip

        study = run_study(plan, settings, 1 if runner is None else config.comparison.workers, run_trials)
        result = search_result(study, plan, settings, metric, 100 * config.forgetting.threshold)
        for path in write_search(result, Path(stage.out_dir)):
            log_artifact(stage, path)
        log_metrics(stage, {f"trials_{k}": v for k, v in result.counts().items()})
        best = require_best(result)
        log_params(stage, {f"best.{k}": v for k, v in best.settings.items()})
        log_metrics(stage, {f"best_{k}": v for k, v in best.metrics.items()} | {"best_trial": best.number})
        set_tags(run, {"tunesmith.search_best": json.dumps(best.settings, default=str)[:5000]})
        progress.done(result.headline())
    return result


def with_search(
    run: RunRef, decision: DecisionRecord, plan: TrainingPlan, search: SearchResult | None
) -> tuple[TrainingPlan, DecisionRecord]:
    """The plan the final training runs with (derived with the chosen trial's settings) and the decision record
    saying what was searched and found (rewritten in the run's decision folder)."""
    if search is None:
        return plan, decision
    tuned = derive(plan, search.best_settings, f"search (trial {search.best.number})")
    decision = replace(decision, search=search.to_json(), training_plan=tuned.to_json())
    folder = Path(run.out_dir) / "decision"
    if folder.is_dir():
        (folder / "decision_record.json").write_text(json.dumps(decision.to_json(), indent=2), encoding="utf-8")
        (folder / "decision.md").write_text(render_decision(decision), encoding="utf-8")
    return tuned, decision
