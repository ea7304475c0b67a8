"""The manifest beside every trained model's weights: what a later `tunesmith predict`, the champion's scoring and
MLflow's model page need to know (method, base model, system prompt, labels, the training settings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "tunesmith_model.json"


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The folder's manifest, or {} for a folder Tunesmith did not write (a bare PEFT adapter, a hub model)."""
    file = Path(folder) / MANIFEST
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}


def write_manifest(folder: str | Path, details: dict[str, Any]) -> Path:
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps(details, indent=2), encoding="utf-8")
    return path
