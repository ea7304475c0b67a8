"""One trial of a search: a short training with the trial's settings, reporting its validation loss to the
study (which may prune it), then scored on the validation split and, when the objective asks, on the
forgetting benchmarks."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from tunesmith.config import RunConfig
from tunesmith.config.schema import SearchConfig
from tunesmith.errors import NotEnoughMemory
from tunesmith.evaluation.test_set import TestSet, score_test_set
from tunesmith.records import CuratedData, PreparedModel, TrainedModel
from tunesmith.search.pruning import TrialPruned, TrialRef
from tunesmith.search.study import TrialOutcome, objective_values
from tunesmith.training.plan import TrainingPlan, derive


def trial_plan(plan: TrainingPlan, settings: dict[str, Any], search: SearchConfig) -> TrainingPlan:
    """The training plan with the trial's settings (memory checked again), evaluated `search.evaluations` times for
    the pruner, its length capped by search.max_steps, and no merged copy written."""
    changes = settings | {"merge": False} | ({"max_steps": search.max_steps} if search.max_steps else {})
    tuned = derive(plan, changes, "search trial")
    every = max(1, math.ceil(tuned.schedule["total_steps"] / search.evaluations))
    return derive(tuned, {"eval_steps": every, "save_steps": every}, "search trial (pruner's evaluations)")


def score_trial(
    config: RunConfig, model: PreparedModel, trained: TrainedModel, validation: TestSet, before: dict | None,
    work_dir: Path,
) -> dict[str, float]:  # fmt: skip
    """The trained trial's task metrics on the validation split, and its forgetting change when `before` is given."""
    from tunesmith.forgetting.stage import run_forgetting, trained_scorable
    from tunesmith.training.inference import load_trained

    loaded, tokenizer = load_trained(
        model.path, trained.method, trained.output_dir, model.precision, model.trust_remote_code, merge=False
    )
    scored = score_test_set(loaded, tokenizer, validation, config.evaluation.batch_size, perplexity=False)
    metrics = {f"validation_{k}": v for k, v in scored.metrics.items() if not k.startswith(("precision_", "recall_"))}
    if before is not None:
        kept = (loaded, tokenizer) if before["suite"]["backend"] == "hf" else None
        del loaded
        work = work_dir / "benchmarks"
        scorable = trained_scorable(model, trained, work, config.forgetting.vllm.lora, kept)
        metrics |= run_forgetting(config, scorable, before, work).summary_metrics()
    return metrics


def run_trial(
    config: RunConfig, plan: TrainingPlan, data: CuratedData, model: PreparedModel, number: int,
    settings: dict[str, Any], ref: TrialRef, validation: TestSet, metric: str, before: dict | None, out_dir: Path,
    run_id: str,
) -> TrialOutcome:  # fmt: skip
    """Train and score one trial. A pruned or diverged trial ends as `pruned`; any other error as `failed`, with
    its message: one bad corner of the space does not stop the search. The trial's weights are deleted after
    scoring (the final training retrains with the chosen settings)."""
    from tunesmith.training.guards import TrainingDiverged
    from tunesmith.training.stage import checkpoint_dir, run_training

    search = config.training.search
    try:
        tuned = trial_plan(plan, settings, search)
    except NotEnoughMemory as err:
        return TrialOutcome(number, "failed", settings, reason=err.problem)
    prunable = search.objective != "pareto"  # Optuna prunes single-objective studies only
    planned = tuned.to_json()
    try:
        trained = run_training(config, tuned, data, model, out_dir, run_id, trial=ref.__dict__ if prunable else None)
    except TrialPruned as stop:
        return TrialOutcome(number, "pruned", settings, reason=str(stop), plan=planned)
    except TrainingDiverged as err:
        return TrialOutcome(number, "pruned", settings, reason=str(err), plan=planned)
    except Exception as err:  # noqa: BLE001 - recorded as the trial's failure; the search carries on
        return TrialOutcome(number, "failed", settings, reason=f"{type(err).__name__}: {err}"[:500], plan=planned)
    finally:
        shutil.rmtree(checkpoint_dir(config, tuned, data, model), ignore_errors=True)
    metrics = {
        "best_eval_loss": trained.metrics["best_eval_loss"],
        "train_wall_s": trained.metrics["wall_s"],
        "steps": trained.metrics["steps"],
    }
    weighs_forgetting = search.objective != "metric"  # else the benchmarks would only cost time per trial
    metrics |= score_trial(config, model, trained, validation, before if weighs_forgetting else None, out_dir)
    if not trained.reused:
        shutil.rmtree(trained.output_dir, ignore_errors=True)
    values = objective_values(search, metrics[f"validation_{metric}"], metrics.get("forgetting_change_pct"))
    return TrialOutcome(number, "complete", settings, values, metrics, plan=planned)
