"""Direct Preference Optimization (Rafailov et al., 2023): raise the chosen reply's likelihood over the rejected
one's, relative to a frozen reference model, with TRL's DPOTrainer. Under a PEFT method the reference is the same
model with its adapter switched off, so no second copy is held."""

from __future__ import annotations

from typing import Any

from tunesmith.prompts import prompt_messages
from tunesmith.records import Example
from tunesmith.training.objectives.base import Objective


def pair_rows(examples: list[Example], system: str) -> list[dict[str, Any]]:
    """TRL's conversational preference rows: the prompt's messages and each reply as an assistant message."""
    return [
        {
            "prompt": prompt_messages(e, system),
            "chosen": [{"role": "assistant", "content": e.answer}],
            "rejected": [{"role": "assistant", "content": e.rejected or ""}],
        }
        for e in examples
    ]


OBJECTIVE = Objective(
    name="dpo",
    data="preferences",
    trainer_class="trl:DPOTrainer",
    config_class="trl:DPOConfig",
    rows=pair_rows,
    # beta 0.1: the paper's value for dialogue and summarisation, and TRL's default.
    settings=lambda preference: {"beta": preference.beta if preference.beta is not None else 0.1},
    # The Alignment Handbook's recipes (zephyr-7b-beta) train DPO at 1/40 of their supervised rate (full:
    # 2e-5 -> 5e-7; QLoRA: 2e-4 -> 5e-6): a preference step moves a policy much further per unit of rate.
    rate_scale=1 / 40,
    needs_reference=True,
    sequences_per_row=2,
    summary="DPO: the chosen reply over the rejected one, against the frozen reference",
)
