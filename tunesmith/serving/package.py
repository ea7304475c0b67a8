"""A trained folder packaged as an MLflow model: the pyfunc (tunesmith/serving/mlflow_model.py) with the folder as
its artifact and Tunesmith's code beside it, logged to the training run; and the folder found again inside a
downloaded MLflow model."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path
from typing import Any

from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from tunesmith.models.manifest import read_manifest
from tunesmith.tracking.mlflow_runs import RunRef

ARTIFACT = "model"  # the trained folder inside the MLflow model's artifacts
ENTRY = Path(__file__).with_name("mlflow_entry.py")  # models-from-code: MLflow imports it to build the model
PACKAGE = Path(__file__).resolve().parents[1]  # tunesmith/, carried with the model as code
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "prompt")]),
    # a multi-label model's `labels`: its set as JSON [{"label", "probability"}]
    outputs=Schema(
        [
            ColSpec("string", "output"),
            ColSpec("double", "probability", required=False),
            ColSpec("string", "labels", required=False),
        ]
    ),  # fmt: skip
    params=ParamSchema([ParamSpec("max_new_tokens", "long", 64), ParamSpec("batch_size", "long", 8)]),
)


def log_model(ref: RunRef, folder: str, example_prompt: str, metadata: dict[str, Any]):
    """Log a trained folder as an MLflow model of the run; MLflow loads it once to check the example answers."""
    import mlflow
    import pandas as pd

    metadata = {**metadata, "system_prompt": read_manifest(folder).get("system", "")}  # shown on the model's page
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


def trained_folder(local: Path) -> Path:
    """The trained folder (adapter or whole model, with its manifest) inside a downloaded MLflow model; a version
    registered before models were logged as MLflow models is that folder itself."""
    from mlflow.models import Model

    if not (local / "MLmodel").is_file():
        return local
    artifacts = Model.load(str(local / "MLmodel")).flavors["python_function"]["artifacts"]
    return local / artifacts[ARTIFACT]["path"]


def pinned_requirements() -> list[str]:
    """Tunesmith's own pinned dependencies (its code travels with the model, so it is not one of them)."""
    try:
        return [r for r in requires("tunesmith") or [] if "extra ==" not in r]
    except PackageNotFoundError:
        return []
