"""Supervised fine-tuning: the next token of each demonstration's answer (TRL's SFTTrainer). The pipeline
tokenizes the rows itself (tunesmith/training/tokenize.py), so the loss covers the assistant's turns only."""

from __future__ import annotations

from tunesmith.training.objectives.base import Objective


def _trainer() -> type:
    from trl import SFTTrainer

    return SFTTrainer


def _arguments() -> type:
    from trl import SFTConfig

    return SFTConfig


OBJECTIVE = Objective(
    name="sft",
    data="demonstrations",
    trainer=_trainer,
    arguments=_arguments,
    summary="supervised fine-tuning on the answers (on preference pairs: the chosen replies)",
)
