from prefect import task

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.forgetting.vllm_server import choose_backend
from tunesmith.models.prepared import prepare_model
from tunesmith.records import PreparedModel
from tunesmith.stages import Stage
from tunesmith.tasks.orchestration import HOUR, SERVICE_RETRIES
from tunesmith.tracking.mlflow_runs import RunRef, set_tags
from tunesmith.training.distributed.launch_config import check_strategy
from tunesmith.training.fast_path import resolve as resolve_fast_path


@task(name="prepare-model", timeout_seconds=2 * HOUR, **SERVICE_RETRIES)
def prepare_model_task(run: RunRef, config: RunConfig) -> PreparedModel:
    with progress.stage(Stage.MODEL, config.model):
        model = prepare_model(config.model, config.model_cache_dir, config.trust_remote_code, config.training.precision)
        check_strategy(config.training.distributed, model.precision.device)
        resolve_fast_path(config.training, model.precision)  # a switch that cannot run here fails before any work
        if config.forgetting.active:
            choose_backend(config.forgetting, model.precision.device, [config.training.method])
        progress.done(model.headline())
    set_tags(
        run,
        {
            "tunesmith.model_path": model.path,
            "tunesmith.precision": model.precision.dtype,
            "tunesmith.precision_reason": model.precision.reason,
            "tunesmith.device": model.precision.device,
        },
    )
    return model
