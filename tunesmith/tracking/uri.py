"""Where runs are tracked: the MLflow tracking URI and where it came from (no MLflow import, so that a command
can check the address before it loads anything heavy)."""

from __future__ import annotations

import os
from pathlib import Path


def tracking_uri(configured: str | None) -> str:
    """MLFLOW_TRACKING_URI wins; then the config; then a SQLite store in the working folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def tracking_source(configured: str | None) -> str:
    """Where tracking_uri() took the address from, for messages about it."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return "MLFLOW_TRACKING_URI"
    return "tracking.tracking_uri" if configured else "the default store (mlflow.db in the working folder)"
