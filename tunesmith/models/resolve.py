"""Turn the config's `model:` into something `from_pretrained` can load."""

from __future__ import annotations

import os
from pathlib import Path

from tunesmith.models.embedded import EMBEDDED_MODELS, materialize


def default_model_cache() -> Path:
    """Where embedded models are converted to checkpoints: TUNESMITH_MODEL_CACHE, else the user's cache."""
    return Path(os.environ.get("TUNESMITH_MODEL_CACHE", "~/.cache/tunesmith/models"))


def resolve_model(spec: str, cache_dir: Path) -> str:
    """Return a local checkpoint folder (embedded models are converted on first use) or a hub id."""
    if spec in EMBEDDED_MODELS:
        return str(materialize(spec, cache_dir))
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise FileNotFoundError(
            f"model '{spec}' is not a local folder and HF_HUB_OFFLINE=1 forbids downloading it from a hub"
        )
    return spec
