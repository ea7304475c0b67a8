"""A trained model as an MLflow model: a pyfunc around Tunesmith's Predictor, so that `mlflow.pyfunc.load_model`,
`mlflow models serve` and `tunesmith predict` give the same answers.

MLflow's transformers flavor is not used: it would answer classification prompts by free generation, where
Tunesmith answers with the most likely label and its probability, and it cannot hold an adapter that refers to a
base model kept elsewhere (a 70B base is not copied into every version). The pyfunc holds the trained folder
(adapter or whole model, with its manifest: method, base model, system prompt, labels) and Tunesmith's code.
"""

from __future__ import annotations

import json
import os
from typing import Any

import mlflow.pyfunc

from tunesmith.serving.package import ARTIFACT


class TunesmithModel(mlflow.pyfunc.PythonModel):
    """Answers a table of prompts: the generated reply, or for a classifier its label and the label's probability."""

    def load_context(self, context) -> None:
        from tunesmith.serving.predict import Predictor

        self.folder = context.artifacts[ARTIFACT]
        self.predictor = Predictor(self.folder, precision=os.environ.get("TUNESMITH_PRECISION", "auto"))

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        import pandas as pd

        from tunesmith.serving.predict import Request

        params = params or {}
        rows = model_input.to_dict("records") if isinstance(model_input, pd.DataFrame) else list(model_input)
        requests = [Request([{"role": "user", "content": str(row["prompt"])}]) for row in rows]
        replies = self.predictor.predict(
            requests, int(params.get("max_new_tokens", 64)), int(params.get("batch_size", 8))
        )
        return pd.DataFrame([_row(r) for r in replies])


def _row(reply: dict[str, Any]) -> dict[str, Any]:
    """One answer as a table row: a multi-label model's labels as JSON [{"label", "probability"}]."""
    labels = json.dumps(reply["labels"]) if "labels" in reply else None
    return {"output": reply["output"], "probability": reply.get("probability"), "labels": labels}
