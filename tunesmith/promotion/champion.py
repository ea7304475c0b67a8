"""The current champion in the MLflow registry, scored on today's test split for a fair comparison."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.exceptions import MlflowException

from tunesmith.curation.records import Example
from tunesmith.evaluation.evaluate import score_with_template
from tunesmith.models.hardware import Precision
from tunesmith.prompts import PromptTemplate
from tunesmith.training.inference import load_trained
from tunesmith.training.sft import MANIFEST


def current_champion(client, name: str, alias: str):
    """The model version holding the alias, or None."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def score_champion(
    version, tracking_uri: str, examples: list[Example], labels, kind: str, precision: Precision, base_override: str,
    batch_size: int,
) -> float | dict:  # fmt: skip
    """Task metrics of a registered version on the given examples, with the prompt it was trained on."""
    import mlflow

    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, tracking_uri=tracking_uri))
    manifest = json.loads((folder / MANIFEST).read_text())
    base = manifest["base_model"] if Path(manifest["base_model"]).exists() else base_override
    model, tokenizer = load_trained(base, manifest["method"], str(folder), precision)
    scored = score_with_template(model, tokenizer, examples, PromptTemplate(manifest.get("system", "")), labels,
                                 batch_size, None, kind)  # fmt: skip
    return scored.metrics
