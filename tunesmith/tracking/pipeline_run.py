"""The parent run of one pipeline run: its output folder, resolved config and MLflow parent run."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tunesmith.config import RunConfig, save_resolved
from tunesmith.console import progress
from tunesmith.preflight import check_tracking
from tunesmith.tracking.mlflow_runs import (
    RunRef,
    end_run,
    log_artifact,
    log_params,
    set_tags,
    start_run,
)
from tunesmith.tracking.uri import tracking_source, tracking_uri


@contextmanager
def pipeline_run(config: RunConfig, kind: str = "pipeline", experiment: str | None = None) -> Iterator[RunRef]:
    """Create runs/<stamp>-<name>/, save the resolved config there and open the MLflow parent run."""
    uri = tracking_uri(config.tracking.tracking_uri)
    check_tracking(uri, tracking_source(config.tracking.tracking_uri))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = (Path(config.output_dir) / f"{stamp}-{config.name}-{uuid.uuid4().hex[:6]}").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    progress.run_folder(out_dir)
    resolved = save_resolved(config, out_dir / "resolved_config.yaml")
    run = start_run(
        uri,
        experiment or config.tracking.experiment,
        config.name,
        out_dir,
        tags={"tunesmith.kind": kind, "tunesmith.output_dir": str(out_dir), "tunesmith.config_name": config.name},
    )
    log_params(run, config.model_dump(mode="json"))
    log_artifact(run, resolved)
    try:
        yield run
    except BaseException as error:
        set_tags(run, {"tunesmith.error": f"{type(error).__name__}: {error}"[:5000]})
        end_run(run, failed=True)
        raise
    end_run(run)
