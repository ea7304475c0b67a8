import json
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import INPUTS, TASK_SOURCE

from tunesmith.config import RunConfig
from tunesmith.config.schema import DecisionConfig
from tunesmith.console import progress
from tunesmith.decision.baselines import Baseline
from tunesmith.decision.render import render_decision
from tunesmith.decision.stage import measure, plan_context, run_decision
from tunesmith.prompts import untrained_prompt
from tunesmith.records import CuratedData, DecisionRecord, PreparedModel
from tunesmith.stages import Stage
from tunesmith.tasks.orchestration import HOUR
from tunesmith.tracking.mlflow_runs import RunRef, log_artifact, log_metrics, log_params, set_tags, stage_run
from tunesmith.tracking.plan import log_plan
from tunesmith.training.plan import TrainingPlan, plan_training
from tunesmith.versioning import code_version


@task(name="measure-baselines", cache_policy=INPUTS + TASK_SOURCE, persist_result=True, timeout_seconds=2 * HOUR)
def measure_baselines_task(
    data: CuratedData, model: PreparedModel, settings: DecisionConfig, system: str, seed: int, code: str
) -> list[Baseline]:
    """Baseline scores, cached by their inputs (curated data, model, settings, the library's code version) so a
    re-run does not measure again, and results of other code are never reused."""
    return measure(data, model, settings, system, seed)


@task(name="plan-training")
def plan_task(config: RunConfig, data: CuratedData, model: PreparedModel, method: str) -> TrainingPlan:
    """The training plan of `method` (set in the config), without the decision's baselines."""
    return plan_training(config.training, method, plan_context(config, data, model))


@task(name="decide", timeout_seconds=2 * HOUR)
def decide_task(run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel) -> DecisionRecord:
    with stage_run(run, Stage.DECISION) as stage:
        baselines_for = (
            measure_baselines_task
            if config.orchestration.cache
            else measure_baselines_task.with_options(refresh_cache=True)
        )
        system = untrained_prompt(config)
        baselines = baselines_for(data, model, config.decision, system, config.data.seed, code_version())
        record = run_decision(data, model, config, baselines)
        out_dir = Path(stage.out_dir)
        (out_dir / "decision_record.json").write_text(json.dumps(record.to_json(), indent=2), encoding="utf-8")
        (out_dir / "decision.md").write_text(render_decision(record), encoding="utf-8")
        log_params(stage, {"decision": record.decision, "method": record.method, "overridden": record.overridden})
        log_metrics(stage, {f"baseline_{b['name']}_{b['metric']}": b["score"] for b in record.baselines})
        log_metrics(stage, {f"baseline_{b['name']}_latency_s": b["latency_s"] for b in record.baselines})
        log_metrics(stage, {f"memory_{name}_gb": e["total_gb"] for name, e in record.memory.items()})
        if record.training_plan:
            log_plan(stage, TrainingPlan.from_json(record.training_plan))
        log_artifact(stage, out_dir / "decision_record.json")
        log_artifact(stage, out_dir / "decision.md")
        if record.stop and record.winning_template:
            template = out_dir / "prompt_template.json"
            template.write_text(json.dumps(record.winning_template, indent=2), encoding="utf-8")
            log_artifact(stage, template)
        set_tags(run, {"tunesmith.decision": record.decision, "tunesmith.method": record.method})
        create_markdown_artifact(
            key="decision", markdown=render_decision(record), description="Prompting, RAG or fine-tuning, and why"
        )
        progress.done(record.headline())
    return record
