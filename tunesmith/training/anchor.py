"""An L2 penalty toward the base model (training.l2_to_base), applied after each optimizer step.

L2-SP (Li, Grandvalet and Davoine, "Explicit inductive bias for transfer learning with convolutional networks",
ICML 2018) adds alpha/2 * ||w - w_start||^2 to the loss. With Adam a penalty in the loss is rescaled per weight
like any gradient, which weakens it where gradients are large (Loshchilov and Hutter's argument for AdamW's
decoupled decay), so it is applied the decoupled way: w <- w - lr * l2_to_base * (w - w_start), the step's own
learning rate included, so the schedule's warm-up and decay apply to it too.
"""

from __future__ import annotations

import torch
from transformers import TrainerCallback

REPLICATED = ("none", "ddp")  # strategies whose every rank holds whole weights that the optimizer steps in place


def why_not_anchored(method: str, strategy: str) -> str | None:
    """Why l2_to_base cannot apply to `method` trained under `strategy`, or None when it can."""
    from tunesmith.training.methods import METHODS

    if strategy not in REPLICATED:
        return (f"needs whole weights on every rank, and {strategy} shards them or keeps their master copy in "
                f"the optimizer: use {' or '.join(REPLICATED)}")  # fmt: skip
    if method in METHODS and not METHODS[method].starts_as_base:
        return f"{method} does not start as the base model (its virtual tokens change the outputs from the start)"
    return None


class PullTowardStart(TrainerCallback):
    """Pulls every trainable weight toward its value when the callback was made (before training and before any
    checkpoint is resumed: the model as built, which for these methods computes the base model's outputs)."""

    def __init__(self, model, strength: float):
        self.strength = strength
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.weights = trainable
        # One copy of the trainable weights: an adapter's few million, or for full fine-tuning one more model.
        self.start = [p.detach().clone() for p in trainable]

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is None:
            return
        rate = optimizer.param_groups[0]["lr"] * self.strength
        if self.start and self.start[0].device != self.weights[0].device:  # the trainer moved the model
            self.start = [s.to(p.device) for s, p in zip(self.start, self.weights, strict=True)]
        with torch.no_grad():
            # lerp: w + min(1, rate) * (w_start - w), for all weights in one fused call
            torch._foreach_lerp_(self.weights, self.start, min(1.0, rate))
