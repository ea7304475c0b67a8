from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from tasks.config import RunConfig
from tasks.curation.curate import CuratedData, curate
from tasks.models.load import load_tokenizer
from tasks.models.prepared import PreparedModel
from tasks.prompts import system_prompt
from tasks.tracking.mlflow_runs import RunRef, log_artifact, log_json, log_metrics, set_tags, stage_run


class CurationFailed(RuntimeError):
    """The data cannot be trained on; the message lists why."""


@task(name="curate")
def curate_task(run: RunRef, config: RunConfig, model: PreparedModel) -> CuratedData:
    with stage_run(run, "curation") as stage:
        out_dir = Path(stage.out_dir)
        tokenizer = load_tokenizer(model.path, model.trust_remote_code)
        system = system_prompt(config.prompt.system, config.data.labels)
        data = curate(config.data, tokenizer, system, config.training.max_seq_length, out_dir)
        log_metrics(stage, {k: float(v) for k, v in data.counts.items()})
        log_metrics(stage, {f"rejected_{k}": float(v) for k, v in data.rejected_by_kind.items()})
        log_json(
            stage,
            {"counts": data.counts, "class_counts": data.class_counts, "balance": data.balance},
            "split_stats.json",
        )
        for name in (
            "curation_report.md",
            "curation_report.json",
            "rejects.jsonl",
            "gx_validation.json",
            "dedup_clusters.json",
            "conflicts.json",
        ):
            log_artifact(stage, out_dir / name)
        if data.docs_dir:
            log_artifact(stage, data.docs_dir, "gx_data_docs")
        set_tags(run, {"tunesmith.data_hash": data.data_hash})
        create_markdown_artifact(
            key="curation-report", markdown=Path(data.report_path).read_text(), description="Curation counts and checks"
        )
        if not data.ok:
            raise CurationFailed("curation stopped the pipeline:\n" + "\n".join(data.problems))
    return data
