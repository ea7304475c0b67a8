from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.retraining.continual import Champion, find_champion
from tunesmith.retraining.fingerprint import FingerprintCheck, check_inputs
from tunesmith.stages import Stage
from tunesmith.tasks.orchestration import HOUR, SERVICE_RETRIES
from tunesmith.tracking.mlflow_runs import RunRef, log_json, log_params, set_tags, stage_run


@task(name="check-inputs", timeout_seconds=HOUR, **SERVICE_RETRIES)
def check_inputs_task(run: RunRef, config: RunConfig) -> FingerprintCheck:
    """Fingerprint the inputs and compare them with the last run that trained a model from this config."""
    with stage_run(run, Stage.FINGERPRINT) as stage:
        check = check_inputs(config, stage.client)
        summary = check.to_json()
        log_params(stage, {k: summary[k] for k in ("data", "config", "rows", "previous_run", "unchanged")})
        log_json(stage, check.to_json(), "fingerprint.json")
        set_tags(run, {"tunesmith.data_fingerprint": check.data, "tunesmith.config_fingerprint": check.config})
        verdict = (
            f"unchanged since run {check.previous_run}" if check.unchanged
            else "changed" if check.previous_run else "no earlier trained run of this config"
        )  # fmt: skip
        create_markdown_artifact(
            key="input-fingerprint",
            markdown=f"## Inputs: {verdict}\n\n- data `{check.data}` ({check.rows} rows in {len(check.files)} files)\n"
            f"- config `{check.config}`\n- previous: data `{check.previous_data}`, config `{check.previous_config}`",
            description="Has anything changed since the last trained model?",
        )
        progress.done(check.headline())
    return check


@task(name="find-champion", timeout_seconds=HOUR, **SERVICE_RETRIES)
def champion_task(run: RunRef, config: RunConfig) -> Champion | None:
    """retraining.start_from: champion: the version to continue, its weights and splits fetched from the registry;
    None (the run starts from the base model) when there is none yet."""
    with stage_run(run, Stage.CHAMPION) as stage:
        name = config.tracking.registered_model or config.name
        cache = Path(config.output_dir).resolve() / "cache" / "champions"
        champion = find_champion(stage.client, run.uri, name, config.promotion.alias, cache)
        if champion is None:
            progress.done(f"no version of {name} holds '{config.promotion.alias}' yet: this run starts from the base")
            return None
        log_params(stage, {"champion": champion.label, "champion_method": champion.method})
        set_tags(run, {"tunesmith.start_from": champion.label})
        progress.done(f"continuing {champion.label} ({champion.method}); its splits are kept")
    return champion
