"""The Optuna study behind a search: where it is stored, how trials are asked for and told, how a stopped
search resumes, and which trial is chosen (and why)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config.schema import SearchConfig
from tunesmith.search.pruning import make_pruner
from tunesmith.search.space import Dimension, as_optuna, from_optuna, show_value

INTERRUPTED = "interrupted"  # user attribute of a trial a stopped search left running


@dataclass
class TrialOutcome:
    """What one trial came to: complete (scored), pruned (behind, or diverged) or failed."""

    number: int
    state: str  # complete | pruned | failed
    settings: dict[str, Any]
    values: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    run_id: str | None = None
    plan: dict[str, Any] | None = None  # the trial's training plan (TrainingPlan as JSON)


@dataclass
class SearchResult:
    """The search as the pipeline, the decision record and the report see it."""

    method: str
    objective: str
    metric: str  # the task metric trials were scored by, on the validation split
    space: dict[str, str]  # key -> the range searched, in words
    trials: list[TrialOutcome]
    best: TrialOutcome | None
    explanation: str
    study: str
    storage: str
    front: list[int] = field(default_factory=list)  # Pareto-optimal trial numbers (objective pareto)

    @property
    def best_settings(self) -> dict[str, Any]:
        return self.best.settings if self.best else {}

    def counts(self) -> dict[str, int]:
        return {s: sum(t.state == s for t in self.trials) for s in ("complete", "pruned", "failed")}

    def headline(self) -> str:
        c = self.counts()
        found = ", ".join(f"{k} {show_value(v)}" for k, v in self.best_settings.items())
        return f"{len(self.trials)} trials ({c['pruned']} pruned, {c['failed']} failed); best: {found}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchResult:
        data = dict(data)
        data["trials"] = [TrialOutcome(**t) for t in data["trials"]]
        data["best"] = TrialOutcome(**data["best"]) if data.get("best") else None
        return cls(**data)


def directions(settings: SearchConfig) -> list[str]:
    """Every objective is maximised: task metrics are higher-better, and so is the forgetting change (%)."""
    return ["maximize", "maximize"] if settings.objective == "pareto" else ["maximize"]


def objective_values(settings: SearchConfig, metric: float, forgetting_change_pct: float | None) -> list[float]:
    """The values Optuna is told for a scored trial."""
    if settings.objective == "metric":
        return [metric]
    if forgetting_change_pct is None:
        raise ValueError(f"training.search.objective {settings.objective!r} needs the forgetting benchmark")
    if settings.objective == "penalized":
        return [metric - settings.forgetting_penalty * max(0.0, -forgetting_change_pct) / 100]
    return [metric, forgetting_change_pct]


def study_name(config_name: str, method: str, key: dict[str, Any]) -> str:
    """One study per config, method, data and search settings: a re-run with the same ones resumes it."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{config_name}-{method}-{digest}"


def default_storage(output_dir: str | Path) -> str:
    folder = Path(output_dir).resolve() / "search"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}"


def open_study(name: str, storage: str, settings: SearchConfig):
    """The study, created or loaded: TPE (or random) sampling, and a pruner judging validation losses."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (
        optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=max(settings.startup_trials, 1))
        if settings.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=settings.seed)
    )
    return optuna.create_study(
        study_name=name, storage=storage, directions=directions(settings), sampler=sampler,
        pruner=make_pruner(settings.pruner, settings.startup_trials), load_if_exists=True,
    )  # fmt: skip


def prepare(study, settings: SearchConfig, space: dict[str, Dimension], defaults: dict[str, Any]) -> int:
    """Get a new or stopped study ready; return how many trials are still to run.

    A new study is seeded with the method's defaults (start_with_defaults) and the config's enqueued settings.
    Trials a stopped search left running are marked failed and enqueued again, so they run afresh (their
    training resumes from its checkpoint where one was saved)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if not trials:
        starts = ([defaults] if settings.start_with_defaults else []) + list(settings.enqueue)
        for start in starts:
            study.enqueue_trial(as_optuna({k: v for k, v in start.items() if k in space}, space))
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
            study.tell(trial.number, state=TrialState.FAIL)
            study.enqueue_trial(trial.params)
    return max(0, settings.trials - len(finished(study)))


def finished(study) -> list:
    """Trials that count toward training.search.trials: scored, pruned or failed on their own."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False) if t.state in done and not t.user_attrs.get(INTERRUPTED)]


def tell(study, trial_number: int, outcome: TrialOutcome) -> None:
    from optuna.trial import TrialState

    for key, value in outcome.metrics.items():
        study._storage.set_trial_user_attr(study.trials[trial_number]._trial_id, key, value)
    if outcome.reason:
        study._storage.set_trial_user_attr(study.trials[trial_number]._trial_id, "reason", outcome.reason)
    if outcome.state == "complete":
        study.tell(trial_number, outcome.values)
    else:
        study.tell(trial_number, state=TrialState.PRUNED if outcome.state == "pruned" else TrialState.FAIL)


def outcomes(study, space: dict[str, Dimension]) -> list[TrialOutcome]:
    """Every counted trial of the study (this search's and a stopped one's), in order."""
    from optuna.trial import TrialState

    states = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
    return [
        TrialOutcome(
            t.number,
            states[t.state],
            from_optuna(t.params, space),
            list(t.values or []),
            {k: v for k, v in t.user_attrs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
            str(t.user_attrs.get("reason", "")),
            t.user_attrs.get("mlflow_run_id"),
        )  # fmt: skip
        for t in finished(study)
    ]


def choose(study, settings: SearchConfig, trials: list[TrialOutcome], threshold_pct: float, metric: str):
    """(chosen trial, why, Pareto front) among the scored trials; (None, why, []) when none was scored."""
    scored = [t for t in trials if t.state == "complete"]
    if not scored:
        return None, "no trial finished: every one was pruned or failed", []
    if settings.objective != "pareto":
        # ties (a metric on a small validation split often ties) go to the lower validation loss
        best = max(scored, key=lambda t: (t.values[0], -t.metrics.get("best_eval_loss", 0.0)))
        what = (
            "validation " + metric
            if settings.objective == "metric"
            else f"validation {metric} less the forgetting penalty"
        )
        return (
            best,
            f"trial {best.number} has the highest {what} ({best.values[0]:.4f}) of {len(scored)} scored trials",
            [],
        )
    front_numbers = sorted(t.number for t in study.best_trials)
    front = [t for t in scored if t.number in front_numbers]
    within = [t for t in front if t.values[1] >= -threshold_pct]
    pool = within or front
    best = max(pool, key=lambda t: t.values[0]) if within else max(pool, key=lambda t: t.values[1])
    listed = "; ".join(f"trial {t.number}: {metric} {t.values[0]:.4f}, forgetting {t.values[1]:+.1f}%" for t in front)
    why = (
        f"trial {best.number} has the highest validation {metric} on the Pareto front among the trials whose "
        f"forgetting stays within {threshold_pct:g}%"
        if within
        else f"no trial on the Pareto front stays within {threshold_pct:g}% forgetting; trial {best.number} "
        "forgets least"
    )
    return best, f"{why} (front: {listed})", front_numbers
