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
    flag = non_finite_flag(tensors)
    return flag is None or not bool(flag)


def non_finite_flag(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """A device boolean, true where some element is not finite, without waiting for the device; None when there
    is nothing to check."""
    flags = [~torch.isfinite(t).all() for t in tensors if hasattr(t, "full_tensor")]
    local = [t for t in tensors if not hasattr(t, "full_tensor")]
    if local:
        flags.append(~torch.isfinite(torch.nn.utils.get_total_norm(local, norm_type=math.inf)))
    return torch.stack(flags).any() if flags else None


class StopOnNonFinite(TrainerCallback):
    """Checks the gradients before every optimizer step and the logged loss, so bad weights are never saved.

    The check of each step stays on the device, folded into one flag that is read when the step logs, evaluates,
    saves or ends the training: reading it every step would make the host wait for the GPU every step."""

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate
        self._model, self._trainable = None, []
        self._flag: torch.Tensor | None = None  # any non-finite gradient since the last read
        self._since = 0  # the first step the flag covers

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
        flag = non_finite_flag([p.grad for p in self._trainable if p.grad is not None])
        if flag is not None:
            if self._flag is None:
                self._since = state.global_step + 1
            self._flag = flag if self._flag is None else self._flag | flag

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_log or control.should_save or control.should_evaluate or control.should_training_stop:
            self._read(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self._read(state.global_step)

    def _read(self, step: int) -> None:
        flag, self._flag = self._flag, None
        if flag is not None and bool(flag):
            # read once per logging step: the first bad step is one of those since the last read
            after = f" after step {self._since - 1}" if self._since < step else ""
            self._fail("a gradient became NaN or infinite" + after, step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self._fail(f"the loss became {loss}", state.global_step)
