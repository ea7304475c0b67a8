"""What a search varies and where its study lives, settled before any trial runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunesmith.config import RunConfig
from tunesmith.config.load import ConfigError
from tunesmith.records import CuratedData, PreparedModel
from tunesmith.search.space import Dimension, current_values
from tunesmith.search.study import default_storage, study_name
from tunesmith.training.methods import get_method
from tunesmith.training.plan import TrainingPlan


@dataclass(frozen=True)
class SearchPlan:
    space: dict[str, Dimension]
    defaults: dict[str, Any]  # the values training would use without a search: the first trial
    study: str
    storage: str
    plan: TrainingPlan  # the training every trial's plan is derived from

    @property
    def method(self) -> str:
        return self.plan.method


def plan_search(config: RunConfig, data: CuratedData, model: PreparedModel, plan: TrainingPlan) -> SearchPlan:
    """The method's declared ranges with the config's changes, starting from the training plan's values; each key
    checked against the training schema."""
    settings, method = config.training.search, plan.method
    declared = get_method(method).search_space
    space = {k: v for k, v in {**declared, **settings.space}.items() if v is not None}
    if settings.max_steps or config.training.max_steps > 0:
        space.pop("epochs", None)  # a step count decides the length: epochs would be sampled without effect
    if not space:
        raise ConfigError(f"training.search: nothing to search for {method} (training.search.space removes every key)")
    resolved = plan.training
    starting = current_values(resolved, list(space))
    key = {
        "model": model.path, "data": data.data_hash, "space": {k: v.model_dump() for k, v in space.items()},
        "training": resolved, "search": settings.model_dump(mode="json", exclude={"trials", "storage"}),
    }  # fmt: skip
    return SearchPlan(
        space,
        starting,
        study_name(config.name, method, key),
        settings.storage or default_storage(config.output_dir),
        plan,
    )
