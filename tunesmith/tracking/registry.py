"""The MLflow model registry: every trained model becomes a version of the run's registered model."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.exceptions import MlflowException

from tunesmith.tracking.mlflow_runs import RunRef


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str


def existing_version(ref: RunRef, registered: dict[str, str] | None) -> RegisteredVersion | None:
    """The registered version a reused training already has, if it is still in the registry."""
    if not registered:
        return None
    try:
        ref.client.get_model_version(registered["name"], registered["version"])
    except MlflowException:
        return None
    return RegisteredVersion(registered["name"], registered["version"])


def register_model(ref: RunRef, name: str, artifact_path: str, tags: dict[str, str]) -> RegisteredVersion:
    """Register the artifacts at `artifact_path` of the run as a new version of `name`, with tags."""
    client = ref.client
    try:
        client.create_registered_model(name, description="Fine-tuned by Tunesmith")
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{client.get_run(ref.run_id).info.artifact_uri}/{artifact_path}"
    version = client.create_model_version(name, source, run_id=ref.run_id, tags={k: str(v) for k, v in tags.items()})
    return RegisteredVersion(name, str(version.version))
