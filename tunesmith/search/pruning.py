"""What a training needs to take part in a search: the trial it reports to, and the callback that reports.

Training depends on this module and nothing else of the search, so the search can depend on training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback


def make_pruner(kind: str, startup_trials: int):
    """The pruner judging reported validation losses; the training process builds its own from the same settings
    (a study loaded from storage does not carry its pruner)."""
    import optuna

    if kind == "median":  # the study maximises its objective, so trials report -loss
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=0)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


@dataclass(frozen=True)
class TrialRef:
    """Where a training process finds its trial: the study's storage, its name, and the trial's id in it."""

    storage: str
    study: str
    trial_id: int
    pruner: str = "median"
    startup_trials: int = 2


class TrialPruned(Exception):
    """The study's pruner stopped the trial: its validation loss is behind the other trials' at the same step."""


class ReportToTrial(TrainerCallback):
    """Tells the trial each validation loss (negated: the study maximises) and stops the training when the
    pruner gives up on it."""

    def __init__(self, ref: TrialRef | dict[str, Any]):
        import optuna

        ref = TrialRef(**ref) if isinstance(ref, dict) else ref
        pruner = make_pruner(ref.pruner, ref.startup_trials)
        study = optuna.load_study(study_name=ref.study, storage=ref.storage, pruner=pruner)
        self.trial = optuna.trial.Trial(study, ref.trial_id)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = (metrics or {}).get("eval_loss")
        if loss is None or not state.is_world_process_zero:
            return
        self.trial.report(-float(loss) if math.isfinite(loss) else -math.inf, state.global_step)
        if self.trial.should_prune():
            raise TrialPruned(f"validation loss {loss:.4g} at step {state.global_step} is behind the other trials")
