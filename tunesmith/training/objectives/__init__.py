"""Training objectives behind one registry: what a training optimizes (supervised answers, or a preference between
two replies) is one module defining OBJECTIVE and one line below; training.objective picks one, on top of any
method (LoRA, QLoRA, full, ...)."""

from __future__ import annotations

from tunesmith.training.objectives import dpo, kto, orpo, sft
from tunesmith.training.objectives.base import Objective

OBJECTIVES: dict[str, Objective] = {o.name: o for o in (sft.OBJECTIVE, dpo.OBJECTIVE, orpo.OBJECTIVE, kto.OBJECTIVE)}


def objective_for(configured: str, data_task_type: str) -> Objective:
    """training.objective resolved for the data: auto is DPO for preference pairs, supervised otherwise."""
    if configured == "auto":
        configured = "dpo" if data_task_type == "preference" else "sft"
    return OBJECTIVES[configured]


__all__ = ["OBJECTIVES", "Objective", "objective_for"]
