"""The MLflow model registry: a logged model (tunesmith/serving/package.py) becomes a version of the run's
registered model; versions are found again, downloaded, and given the run's metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    """A registered model's files: `models:/name/version` (or `models:/name@alias`) looked up in the registry of
    `tracking_uri`. MLflow resolves a models:/ URI in the process's global registry, whatever tracking_uri says,
    so the version's own location is asked for first and downloaded from there."""
    import mlflow
    from mlflow import MlflowClient

    if tracking_uri and uri.startswith("models:/") and not uri.startswith("models:/m-"):
        name, _, version = uri.removeprefix("models:/").partition("/")
        client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
        if "@" in name:
            name, alias = name.split("@", 1)
            version = client.get_model_version_by_alias(name, alias).version
        uri = client.get_model_version_download_uri(name, version)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri))


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
