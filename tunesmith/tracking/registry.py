"""The MLflow model registry: every trained model is logged as an MLflow model (a pyfunc that loads and serves it,
linked to the training run as MLflow 3's logged model) and becomes a version of the run's registered model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from tunesmith.tracking.mlflow_runs import RunRef


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    model_id: str | None = None  # MLflow 3's logged model: evaluation metrics are attached to it


def existing_version(ref: RunRef, registered: dict[str, str] | None) -> RegisteredVersion | None:
    """The registered version a reused training already has, if it is still in the registry."""
    if not registered:
        return None
    try:
        ref.client.get_model_version(registered["name"], registered["version"])
    except MlflowException:
        return None
    return RegisteredVersion(registered["name"], registered["version"], registered.get("model_id"))


def log_model(ref: RunRef, folder: str, example_prompt: str, metadata: dict[str, Any]):
    """Log a trained folder as an MLflow model of the run; MLflow loads it once to check the example answers."""
    import mlflow
    import pandas as pd

    from tunesmith.serving.mlflow_model import ARTIFACT, ENTRY, PACKAGE, SIGNATURE, pinned_requirements
    from tunesmith.serving.predict import manifest

    metadata = {**metadata, "system_prompt": manifest(Path(folder)).get("system", "")}  # shown on the model's page
    mlflow.set_tracking_uri(ref.uri)
    with mlflow.start_run(run_id=ref.run_id):
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(ENTRY),
            artifacts={ARTIFACT: folder},
            code_paths=[str(PACKAGE)],
            signature=SIGNATURE,
            input_example=pd.DataFrame({"prompt": [example_prompt]}),
            pip_requirements=pinned_requirements(),
            metadata=metadata,
            model_type=f"tunesmith-{metadata.get('method', 'model')}",
        )


def register_model(ref: RunRef, name: str, model_info, tags: dict[str, str]) -> RegisteredVersion:
    """A new version of `name` from a logged model, with tags."""
    client = ref.client
    try:
        client.create_registered_model(name, description="Fine-tuned by Tunesmith")
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(
        name, model_info.model_uri, run_id=ref.run_id, tags={k: str(v) for k, v in tags.items()},
        model_id=model_info.model_id,
    )  # fmt: skip
    return RegisteredVersion(name, str(version.version), model_info.model_id)


def download_model(uri: str, tracking_uri: str | None = None) -> Path:
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri))


def trained_folder(local: Path) -> Path:
    """The trained folder (adapter or whole model, with its manifest) inside a downloaded MLflow model; a version
    registered before models were logged as MLflow models is that folder itself."""
    from mlflow.models import Model

    from tunesmith.serving.mlflow_model import ARTIFACT

    if not (local / "MLmodel").is_file():
        return local
    artifacts = Model.load(str(local / "MLmodel")).flavors["python_function"]["artifacts"]
    return local / artifacts[ARTIFACT]["path"]


PER_CLASS = ("precision_", "recall_", "f1_", "support_")  # per-label rows stay on the evaluation run


def log_model_metrics(ref: RunRef, model_id: str, metrics: dict[str, float], dataset=None) -> None:
    """Metrics of the run attached to its logged model too (and to the dataset they were measured on), as the
    model's page in MLflow shows them."""
    import mlflow

    from tunesmith.tracking.mlflow_runs import metric_keys

    headline = {k: v for k, v in metrics.items() if v is not None and not k.startswith(PER_CLASS)}
    keys = metric_keys(list(headline))
    mlflow.set_tracking_uri(ref.uri)
    mlflow.log_metrics({keys[k]: v for k, v in headline.items()}, run_id=ref.run_id, model_id=model_id,
                       dataset=dataset)  # fmt: skip
