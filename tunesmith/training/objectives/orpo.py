"""Odds Ratio Preference Optimization (Hong et al., 2024): one stage, no reference model; the supervised loss on
the chosen reply plus an odds-ratio term against the rejected one (TRL's ORPOTrainer, in trl.experimental)."""

from __future__ import annotations

from tunesmith.training.objectives.base import Objective
from tunesmith.training.objectives.dpo import pair_rows

OBJECTIVE = Objective(
    name="orpo",
    data="preferences",
    trainer_class="trl.experimental.orpo:ORPOTrainer",
    config_class="trl.experimental.orpo:ORPOConfig",
    rows=pair_rows,
    # lambda (TRL's beta) 0.1: the paper's setting for its Mistral and Llama-2 models, and TRL's default.
    settings=lambda preference: {"beta": preference.beta if preference.beta is not None else 0.1},
    # The paper trains Mistral-ORPO at 5e-6 in full, a quarter of the usual supervised 2e-5: its loss still holds
    # the supervised term, so the rate stays nearer a supervised one than DPO's.
    rate_scale=1 / 4,
    sequences_per_row=2,
    unsupported=frozenset({"padding_free"}),
    summary="ORPO: supervised loss on the chosen reply plus an odds ratio against the rejected one, one stage",
)
