"""learning-curve: curate once -> base model -> the method trained on nested subsets of the training split -> the
fitted curve (what 2x and 4x the data would score, whether it has plateaued, what a target needs)."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow

from tunesmith.config import load_config
from tunesmith.console import progress
from tunesmith.evaluation.curve_points import schedule
from tunesmith.quiet import quiet_libraries
from tunesmith.stages import Stage, in_order
from tunesmith.tasks.curation import curate_task
from tunesmith.tasks.curve import curve_report_task, measure_curve, point_stage
from tunesmith.tasks.models import prepare_model_task
from tunesmith.tasks.orchestration import record_failure
from tunesmith.tasks.retraining import check_inputs_task
from tunesmith.tracking.pipeline_run import pipeline_run

# The method a curve trains when the config leaves it to the decision stage, which a curve does not run: LoRA, the
# method the decision picks whenever memory allows it.
DEFAULT_METHOD = "lora"


@dataclass
class CurveResult:
    run_id: str
    output_dir: str
    report: str


@flow(name="learning-curve", on_failure=[record_failure], on_crashed=[record_failure])
def learning_curve(config_path: str, overrides: list[str] | None = None) -> CurveResult:
    quiet_libraries()
    config = load_config(config_path, overrides)
    method = config.training.method if config.training.method != "auto" else DEFAULT_METHOD
    progress.plan(curve_stages(config.evaluation.learning_curve.fractions))
    with pipeline_run(config, kind="curve", experiment=f"{config.tracking.experiment}-curve") as run:
        inputs = check_inputs_task(run, config)
        model = prepare_model_task(run, config)
        data = curate_task(run, config, model, inputs.data)
        points, skipped = measure_curve(run, config, data, model, method)
        report = curve_report_task(run, config, data, points, skipped)
        return CurveResult(run.run_id, run.out_dir, report["markdown"])


def curve_stages(fractions: list[float]) -> list[str]:
    return [*in_order([Stage.FINGERPRINT, Stage.MODEL, Stage.CURATION]), *map(point_stage, schedule(fractions)),
            Stage.CURVE]  # fmt: skip
