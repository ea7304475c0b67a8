"""Trainer callbacks that stop a run that cannot end well, with a message that says what to change."""

from __future__ import annotations

import math

import torch
from transformers import TrainerCallback

from tunesmith.errors import TunesmithError


class TrainingDiverged(TunesmithError, RuntimeError):
    """The loss or the gradients stopped being finite numbers."""


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every element is finite, with one wait for the device: the largest magnitude of all of them, from
    one fused kernel, is finite only if they all are (NaN propagates through the max). Sharded (DTensor) gradients
    are checked whole, so every rank of a sharded job reaches the same answer."""
    sharded = [t for t in tensors if hasattr(t, "full_tensor")]
    local = [t for t in tensors if not hasattr(t, "full_tensor")]
    if local and not torch.isfinite(torch.nn.utils.get_total_norm(local, norm_type=math.inf)):
        return False
    return all(bool(torch.isfinite(t).all()) for t in sharded)


class StopOnNonFinite(TrainerCallback):
    """Checks the gradients before every optimizer step and the logged loss, so bad weights are never saved."""

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate
        self._model, self._trainable = None, []

    def _fail(self, what: str, step: int) -> None:
        raise TrainingDiverged(
            f"training diverged: {what} at step {step}",
            "training.learning_rate",
            f"lower training.learning_rate (now {self.learning_rate:g}; try {self.learning_rate / 10:g}), or check "
            "the data for extreme examples",
        )

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        if self._model is not model:  # walking a 1B model's modules for its parameters costs ~25 ms a step
            self._model, self._trainable = model, [p for p in model.parameters() if p.requires_grad]
        if not all_finite([p.grad for p in self._trainable if p.grad is not None]):
            self._fail("a gradient became NaN or infinite", state.global_step + 1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self._fail(f"the loss became {loss}", state.global_step)
