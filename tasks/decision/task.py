import json
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from tasks.config import RunConfig
from tasks.curation.curate import CuratedData
from tasks.decision.render import render_decision
from tasks.decision.rules import DecisionRecord
from tasks.decision.stage import make_decision
from tasks.models.prepared import PreparedModel
from tasks.tracking.mlflow_runs import RunRef, log_artifact, log_metrics, log_params, set_tags, stage_run


@task(name="decide")
def decide_task(run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel) -> DecisionRecord:
    with stage_run(run, "decision") as stage:
        record = make_decision(data, model, config)
        out_dir = Path(stage.out_dir)
        (out_dir / "decision_record.json").write_text(json.dumps(record.to_json(), indent=2), encoding="utf-8")
        (out_dir / "decision.md").write_text(render_decision(record), encoding="utf-8")
        log_params(stage, {"decision": record.decision, "method": record.method, "overridden": record.overridden})
        log_metrics(stage, {f"baseline_{b['name']}_{b['metric']}": b["score"] for b in record.baselines})
        log_metrics(stage, {f"baseline_{b['name']}_latency_s": b["latency_s"] for b in record.baselines})
        log_metrics(stage, {f"memory_{name}_gb": e["total_gb"] for name, e in record.memory.items()})
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
    return record
