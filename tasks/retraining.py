from prefect import task
from prefect.artifacts import create_markdown_artifact

from tunesmith.config import RunConfig
from tunesmith.console import progress
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
