import hashlib
import json
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import INPUTS, TASK_SOURCE

from tunesmith.config import RunConfig
from tunesmith.config.schema import DataConfig
from tunesmith.console import progress
from tunesmith.curation.curate import gate
from tunesmith.curation.stage import run_curation, training_threshold
from tunesmith.prompts import training_prompt
from tunesmith.records import CuratedData, PreparedModel
from tunesmith.stages import Stage
from tunesmith.tasks.orchestration import HOUR, SERVICE_RETRIES
from tunesmith.tracking.datasets import log_datasets, split_datasets
from tunesmith.tracking.mlflow_runs import RunRef, log_artifact, log_json, log_metrics, log_params, set_tags, stage_run
from tunesmith.versioning import code_version


@task(
    name="curate-data", cache_policy=INPUTS + TASK_SOURCE, persist_result=True, timeout_seconds=HOUR, **SERVICE_RETRIES
)
def curate_data(
    data: dict,
    model_path: str,
    trust_remote_code: bool,
    system: str,
    max_tokens: int | None,
    fingerprint: str,
    cache_root: str,
    code: str,
    min_train_examples: int = 0,
    pinned_from: str | None = None,
) -> CuratedData:
    """The curation itself, cached by its inputs (the data fingerprint and the library's code version among them):
    a re-run after a crash, or a run of another config on the same data, reuses the curated splits instead of
    computing them again; results of other code are never reused. `pinned_from`: the champion's split files (a
    folder named by its version), whose examples keep their splits."""
    key = [data, model_path, system, max_tokens, fingerprint, code, min_train_examples]
    key = json.dumps(key + [pinned_from] if pinned_from else key, sort_keys=True)
    out_dir = Path(cache_root) / "curation" / hashlib.sha256(key.encode()).hexdigest()[:16]
    return run_curation(
        DataConfig.model_validate(data), model_path, trust_remote_code, system, max_tokens, out_dir, min_train_examples,
        pinned_from,
    )  # fmt: skip


@task(name="curate", timeout_seconds=HOUR)
def curate_task(
    run: RunRef, config: RunConfig, model: PreparedModel, fingerprint: str, pinned_from: str | None = None
) -> CuratedData:
    with stage_run(run, Stage.CURATION) as stage:
        system = training_prompt(config)
        compute = curate_data if config.orchestration.cache else curate_data.with_options(refresh_cache=True)
        cache_root = str((Path(config.output_dir) / "cache").resolve())
        arguments = (config.data.model_dump(mode="json"), model.path, model.trust_remote_code, system,
                     config.training.max_seq_length, fingerprint, cache_root, code_version(),
                     training_threshold(config), pinned_from)  # fmt: skip
        data = compute(*arguments)
        if not all(
            Path(p).is_file() for p in (data.train_path, data.validation_path, data.test_path, data.report_path)
        ):
            data = curate_data.with_options(refresh_cache=True)(*arguments)  # the cached folder was deleted
        out_dir = Path(data.report_path).parent
        log_params(stage, {"curated_dir": str(out_dir), "max_seq_length": data.max_seq_length,
                           "max_seq_length_source": data.max_seq_length_source})  # fmt: skip
        log_metrics(stage, {k: float(v) for k, v in data.counts.items()})
        log_metrics(stage, {f"rejected_{k}": float(v) for k, v in data.rejected_by_kind.items()})
        log_json(
            stage,
            {"counts": data.counts, "class_counts": data.class_counts, "balance": data.balance},
            "split_stats.json",
        )
        for name in ("curation_report.md", "curation_report.json", "rejects.jsonl", "gx_validation.json",
                     "dedup_clusters.json", "conflicts.json"):  # fmt: skip
            log_artifact(stage, out_dir / name)
        if data.docs_dir:
            log_artifact(stage, data.docs_dir, "gx_data_docs")
        set_tags(run, {"tunesmith.data_hash": data.data_hash})
        datasets = split_datasets(data, config.name)
        log_datasets(stage, datasets)
        log_datasets(run, datasets)  # the parent run too: its row in the runs table shows what it used
        create_markdown_artifact(
            key="curation-report", markdown=Path(data.report_path).read_text(), description="Curation counts and checks"
        )
        gate(data)
        progress.done(data.headline())
    return data
