"""decide: curate -> decide, without training (`tunesmith decide`)."""

from __future__ import annotations

from prefect import flow

from tunesmith.config import load_config
from tunesmith.console import progress
from tunesmith.quiet import quiet_libraries
from tunesmith.records import DecisionRecord
from tunesmith.stages import Stage
from tunesmith.tasks.curation import curate_task
from tunesmith.tasks.decision import decide_task
from tunesmith.tasks.models import prepare_model_task
from tunesmith.tasks.retraining import check_inputs_task
from tunesmith.tracking.pipeline_run import pipeline_run


@flow(name="decide")
def decide_flow(config_path: str, overrides: list[str] | None = None) -> DecisionRecord:
    quiet_libraries()
    config = load_config(config_path, overrides)
    progress.plan([Stage.FINGERPRINT, Stage.MODEL, Stage.CURATION, Stage.DECISION])
    with pipeline_run(config, kind="decide") as run:
        inputs = check_inputs_task(run, config)
        model = prepare_model_task(run, config)
        data = curate_task(run, config, model, inputs.data)
        return decide_task(run, config, data, model)
