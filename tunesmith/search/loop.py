"""The search itself: ask the study for trials, have them trained (by whatever runs them: this process, or the
comparison engine's workers), tell the study how each ended, until it holds training.search.trials finished
trials; then choose, and write what was found."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.config.schema import SearchConfig
from tunesmith.errors import TunesmithError
from tunesmith.search.plan import SearchPlan
from tunesmith.search.render import render_search
from tunesmith.search.space import suggest
from tunesmith.search.study import SearchResult, TrialOutcome, choose, open_study, outcomes, prepare, tell


class SearchFailed(TunesmithError):
    """No trial of a hyperparameter search could be scored."""


@dataclass(frozen=True)
class TrialCall:
    """One asked trial: its number, its id in the study's storage and the settings it trains with."""

    number: int
    trial_id: int
    settings: dict[str, Any]


def run_study(
    plan: SearchPlan, settings: SearchConfig, batch: int, run_trials: Callable[[list[TrialCall]], list[TrialOutcome]]
) -> Any:
    """The study (new, or a stopped one resumed) run to its trial count, `batch` trials at a time; returns it."""
    study = open_study(plan.study, plan.storage, settings)
    remaining = prepare(study, settings, plan.space, plan.defaults)
    while remaining > 0:
        asked = [study.ask() for _ in range(min(batch, remaining))]
        calls = [TrialCall(t.number, t._trial_id, suggest(t, plan.space)) for t in asked]
        for call, outcome in zip(calls, run_trials(calls), strict=True):
            tell(study, call.number, outcome)
        remaining = prepare(study, settings, plan.space, plan.defaults)
    return study


def search_result(study, plan: SearchPlan, settings: SearchConfig, metric: str, threshold_pct: float) -> SearchResult:
    """Every trial as it ended, and the one chosen (with why; the Pareto front for a two-objective search)."""
    trials = outcomes(study, plan.space)
    best, why, front = choose(study, settings, trials, threshold_pct, metric)
    space = {k: d.describe() for k, d in plan.space.items()}
    return SearchResult(
        plan.method, settings.objective, metric, space, trials, best, why, plan.study, plan.storage, front
    )


def write_search(result: SearchResult, out_dir: Path) -> list[Path]:
    """search.json and search.md in out_dir."""
    paths = [out_dir / "search.json", out_dir / "search.md"]
    paths[0].write_text(json.dumps(result.to_json(), indent=2, default=str), encoding="utf-8")
    paths[1].write_text("\n".join(render_search(result.to_json(), "#")), encoding="utf-8")
    return paths


def require_best(result: SearchResult) -> TrialOutcome:
    """The chosen trial; SearchFailed, with the last trials' reasons, when none could be scored."""
    if result.best is None:
        reasons = "; ".join(f"trial {t.number}: {t.reason}" for t in result.trials[-3:])
        raise SearchFailed(
            f"the hyperparameter search scored no trial ({reasons})", "training.search",
            "narrow training.search.space (e.g. a lower learning_rate range) or run more trials",
        )  # fmt: skip
    return result.best
