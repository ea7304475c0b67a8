"""Which of the requested methods fit this machine's memory: each method's training plan, built as the pipeline
builds its own (the same settings, and a micro-batch shrunk to fit where the estimate says so)."""

from __future__ import annotations

from dataclasses import replace

from tunesmith.config import RunConfig
from tunesmith.decision.stage import plan_context
from tunesmith.errors import NotEnoughMemory
from tunesmith.records import CuratedData, MethodResult, PreparedModel
from tunesmith.training.plan import TrainingPlan, plan_training


def fit_methods(
    config: RunConfig, data: CuratedData, model: PreparedModel, methods: list[str]
) -> tuple[dict[str, TrainingPlan], list[MethodResult]]:
    """(the plan of every method to run, skipped rows with the reason). With comparison.skip_unfit off, every
    method is planned without a memory check and runs."""
    context = plan_context(config, data, model)
    if not config.comparison.skip_unfit:
        context = replace(context, budget_gb=None)
    plans, skipped = {}, []
    for method in dict.fromkeys(methods):  # keep the order, drop repeats
        try:
            plans[method] = plan_training(config.training, method, context)
        except NotEnoughMemory as err:
            skipped.append(MethodResult(method, "skipped", err.problem))
    return plans, skipped
