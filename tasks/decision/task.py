import json

from prefect import task
from prefect.artifacts import create_markdown_artifact

from tasks.config import RunConfig
from tasks.curation.curate import CuratedData
from tasks.decision.rules import DecisionRecord, decide
from tasks.tracking.mlflow_runs import RunRef, log_json, log_params, stage_run


@task(name="decide")
def decide_task(run: RunRef, config: RunConfig, data: CuratedData) -> DecisionRecord:
    with stage_run(run, "decision") as stage:
        record = decide(data.counts["train"], data.task_type, config.decision, config.training.method)
        log_params(stage, {"decision": record.decision, "method": record.method, "overridden": record.overridden})
        log_json(stage, record.to_json(), "decision_record.json")
        create_markdown_artifact(
            key="decision",
            markdown=f"## Decision: {record.decision}\n\n```json\n{json.dumps(record.to_json(), indent=2)}\n```",
            description="Prompting or fine-tuning, and why",
        )
    return record
