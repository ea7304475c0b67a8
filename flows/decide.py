"""decide: curate -> decide, without training (`tunesmith decide`)."""

from __future__ import annotations

from prefect import flow

from tasks.config import load_config
from tasks.console import progress
from tasks.curation.task import curate_task
from tasks.decision.rules import DecisionRecord
from tasks.decision.task import decide_task
from tasks.models.task import prepare_model_task
from tasks.quiet import quiet_libraries
from tasks.retraining.task import check_inputs_task
from tasks.tracking.pipeline_run import pipeline_run


@flow(name="decide")
def decide_flow(config_path: str, overrides: list[str] | None = None) -> DecisionRecord:
    quiet_libraries()
    config = load_config(config_path, overrides)
    progress.plan(["fingerprint", "model", "curation", "decision"])
    with pipeline_run(config, kind="decide") as run:
        inputs = check_inputs_task(run, config)
        model = prepare_model_task(run, config)
        data = curate_task(run, config, model, inputs.data)
        return decide_task(run, config, data, model)
