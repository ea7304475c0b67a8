"""A training plan in MLflow: each setting as a `plan.` param with its source beside it, and the plan itself as
an artifact (plan.json)."""

from __future__ import annotations

from tunesmith.tracking.mlflow_runs import RunRef, log_json, log_params
from tunesmith.training.plan import TrainingPlan


def log_plan(ref: RunRef, plan: TrainingPlan) -> None:
    rows = plan.rows()
    log_params(ref, {f"plan.{key}": value for key, value, _ in rows}
               | {f"plan.source.{key}": source for key, _, source in rows if source})  # fmt: skip
    log_json(ref, plan.to_json(), "plan.json")
