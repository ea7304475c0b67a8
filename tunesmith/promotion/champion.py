"""The current champion in the MLflow registry, scored on today's test split for a fair comparison."""

from __future__ import annotations

from pathlib import Path

from mlflow.exceptions import MlflowException

from tunesmith.evaluation.test_set import TestSet, score_test_set
from tunesmith.models.manifest import read_manifest
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Precision, Scored
from tunesmith.serving.package import trained_folder
from tunesmith.tracking.registry import download_model
from tunesmith.training.inference import load_trained


def current_champion(client, name: str, alias: str):
    """The model version holding the alias, or None."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def score_champion(
    version, tracking_uri: str, tests: TestSet, precision: Precision, base_override: str, batch_size: int
) -> Scored:
    """A registered version's task metrics and per-example scores on the test set, with the prompt it was trained
    on."""
    folder = trained_folder(download_model(f"models:/{version.name}/{version.version}", tracking_uri))
    manifest = read_manifest(folder)
    base = manifest["base_model"] if Path(manifest["base_model"]).exists() else base_override
    model, tokenizer = load_trained(base, manifest["method"], str(folder), precision)
    template = PromptTemplate(manifest.get("system", ""))
    return score_test_set(model, tokenizer, tests, batch_size, template, perplexity=False)
