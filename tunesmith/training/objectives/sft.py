"""Supervised fine-tuning: the next token of each demonstration's answer (TRL's SFTTrainer). The pipeline
tokenizes the rows itself (tunesmith/training/tokenize.py), so the loss covers the assistant's turns only."""

from __future__ import annotations

from tunesmith.training.objectives.base import Objective

OBJECTIVE = Objective(
    name="sft",
    data="demonstrations",
    trainer_class="tunesmith.training.step_metrics:SFTTrainerMetricsOnDevice",  # TRL's, without per-step syncs
    config_class="trl:SFTConfig",
    summary="supervised fine-tuning on the answers (on preference pairs: the chosen replies)",
)
