"""Retraining against forgetting, as the pipeline runs it: each attempt a child run of the pipeline's run, holding
its own curation (when replay changes the data), training, evaluation and forgetting stages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunesmith.config import RunConfig, load_config
from tunesmith.console import progress
from tunesmith.decision.stage import plan_context
from tunesmith.forgetting.mitigation import Attempt, Mitigation, continued, plan_attempts
from tunesmith.records import DecisionRecord, PreparedModel
from tunesmith.retraining.continual import Champion, continuing
from tunesmith.stages import Stage
from tunesmith.tasks.curation import curate_task
from tunesmith.tasks.evaluation import evaluate_task
from tunesmith.tasks.forgetting import forgetting_task
from tunesmith.tasks.training import train_task
from tunesmith.tracking.mlflow_runs import RunRef, end_run, log_metrics, log_params, set_tags, start_run
from tunesmith.training.anchor import why_not_anchored
from tunesmith.training.plan import TrainingPlan, derive


@contextmanager
def attempt_run(run: RunRef, number: int, mitigation: Mitigation) -> Iterator[RunRef]:
    """A child run of the pipeline's run for one attempt; its stages nest under it."""
    out_dir = Path(run.out_dir) / "attempts" / str(number)
    with progress.stage(Stage.MITIGATION, f"attempt {number}: {mitigation.why}"):
        tags = {"tunesmith.stage": Stage.MITIGATION.value, "tunesmith.mitigation": mitigation.why}
        attempt = start_run(run.uri, "", f"attempt-{number}", out_dir, parent=run, tags=tags)
        out_dir.mkdir(parents=True, exist_ok=True)
        failed = True
        try:
            yield attempt
            failed = False
        finally:
            end_run(attempt, failed=failed)


def retrain_against_forgetting(
    run: RunRef, config_path: str, overrides: list[str], config: RunConfig, model: PreparedModel,
    fingerprint: str, plan: TrainingPlan, decision: DecisionRecord, before: dict[str, Any], first: Attempt,
    champion: Champion | None = None,
) -> list[Attempt]:  # fmt: skip
    """Attempts after the first, until one shows no forgetting or forgetting.mitigation.max_attempts are spent.
    A rerun reuses each attempt's curation and training (their caches), as it does the first's."""
    settings = config.forgetting.mitigation
    steps = int(first.trained.metrics.get("steps", 0))
    anchored = why_not_anchored(plan.method, plan.settings.distributed.strategy) is None
    was = continued(first.forgetting, config.retraining.replay_fraction) if champion else None
    mitigations = plan_attempts(settings.order, settings.max_attempts, config.data.replay.fraction,
                                plan.settings.learning_rate or 0.0, steps, anchored, was)  # fmt: skip
    attempts: list[Attempt] = []
    for number, mitigation in enumerate(mitigations, start=1):
        with attempt_run(run, number, mitigation) as attempt:
            changed = load_config(config_path, [*overrides, *mitigation.data]) if mitigation.data else config
            changed = continuing(changed, champion) if champion and mitigation.data else changed
            pinned = champion.data_dir if champion else None
            data = curate_task(attempt, changed, model, fingerprint, pinned) if mitigation.data else first.data
            context = plan_context(changed, data, model) if mitigation.data else None
            retrain = derive(plan, mitigation.training, f"mitigation: {mitigation.why}", context)
            log_params(attempt, {"mitigation": mitigation.why, "config_changes": ", ".join(mitigation.data),
                                 **{f"training.{k}": v for k, v in mitigation.training.items()}})  # fmt: skip
            trained = train_task(attempt, changed, retrain, data, model, champion)
            scores = evaluate_task(attempt, changed, data, model, trained, decision)
            drift = forgetting_task(attempt, changed, model, trained, before, champion, data)
            log_metrics(attempt, {f"finetuned_{scores.metric}": scores.finetuned[scores.metric],
                                  "forgetting_pooled_difference": drift.pooled["difference"],
                                  "forgetting_pooled_low": drift.pooled["low"],
                                  "forgetting_pooled_high": drift.pooled["high"]})  # fmt: skip
            set_tags(attempt, {"tunesmith.forgetting": drift.verdict})
            progress.done(f"{scores.metric} {scores.finetuned[scores.metric]:.3f}; forgetting: {drift.headline()}")
        attempts.append(Attempt(number, mitigation.why, trained, scores, drift, changed, data))
        if not drift.forgetting:
            break
    return attempts
