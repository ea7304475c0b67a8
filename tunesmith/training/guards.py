"""Trainer callbacks that stop a run that cannot end well, with a message that says what to change."""

from __future__ import annotations

import math

import torch
from transformers import TrainerCallback

from tunesmith.errors import TunesmithError


class TrainingDiverged(TunesmithError, RuntimeError):
    """The loss or the gradients stopped being finite numbers."""


class StopOnNonFinite(TrainerCallback):
    """Checks the gradients before every optimizer step and the logged loss, so bad weights are never saved."""

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate

    def _fail(self, what: str, step: int) -> None:
        raise TrainingDiverged(
            f"training diverged: {what} at step {step}",
            "training.learning_rate",
            f"lower training.learning_rate (now {self.learning_rate:g}; try {self.learning_rate / 10:g}), or check "
            "the data for extreme examples",
        )

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        for parameter in model.parameters() if model is not None else []:
            if parameter.grad is not None and not torch.isfinite(parameter.grad).all():
                self._fail("a gradient became NaN or infinite", state.global_step + 1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self._fail(f"the loss became {loss}", state.global_step)
