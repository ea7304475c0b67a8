"""Kahneman-Tversky Optimization (Ethayarajh et al., 2024): each reply judged alone as desirable or not, so it
trains on unpaired thumbs-up/thumbs-down data; a preference pair gives one of each (TRL's KTOTrainer)."""

from __future__ import annotations

import random
from typing import Any

from tunesmith.prompts import prompt_messages
from tunesmith.records import Example
from tunesmith.training.objectives.base import Objective


def unpaired_rows(examples: list[Example], system: str) -> list[dict[str, Any]]:
    """Each pair as two rows, the chosen reply desirable and the rejected one not (TRL's unpair_preference_dataset
    does the same on a whole dataset), shuffled once: TRL reads them in order (see `sampling`)."""
    rows = []
    for e in examples:
        prompt = prompt_messages(e, system)
        rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": e.answer}], "label": True})
        rows.append(
            {"prompt": prompt, "completion": [{"role": "assistant", "content": e.rejected or ""}], "label": False}
        )
    random.Random(0).shuffle(rows)
    return rows


OBJECTIVE = Objective(
    name="kto",
    data="preferences",
    trainer_class="trl:KTOTrainer",
    config_class="trl:KTOConfig",
    rows=unpaired_rows,
    # beta 0.1 and equal weights for desirable and undesirable replies (balanced here: one of each per pair): the
    # paper's defaults and TRL's.
    settings=lambda preference: {"beta": preference.beta if preference.beta is not None else 0.1},
    # The paper trains at DPO's rates (5e-7 in full for its Llama models): the same 1/40 of a supervised rate.
    rate_scale=1 / 40,
    needs_reference=True,
    rows_per_example=2,
    # Each row's completion and a mismatched one for the KL estimate (TRL's KL batch).
    sequences_per_row=2,
    # TRL pairs each row with a neighbour's completion for its KL estimate, so the batches keep a fixed order.
    sampling="sequential",
    unsupported=frozenset({"padding_free"}),
    summary="KTO: each reply judged alone, the chosen desirable and the rejected not",
)
