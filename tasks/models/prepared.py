"""The model a pipeline run works with: where its checkpoint is and the precision it runs in."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.models.hardware import Precision, choose_precision
from tasks.models.resolve import resolve_model


@dataclass(frozen=True)
class PreparedModel:
    path: str
    precision: Precision
    trust_remote_code: bool = False


def prepare_model(spec: str, cache_dir, trust_remote_code: bool = False, precision: str = "auto") -> PreparedModel:
    """Resolve the config's model (converting an embedded one on first use) and choose its precision."""
    return PreparedModel(resolve_model(spec, cache_dir), choose_precision(precision), trust_remote_code)
