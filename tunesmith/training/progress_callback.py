"""Training steps, the latest losses and the speed on the console's progress bar."""

from __future__ import annotations

import time

from transformers import TrainerCallback

from tunesmith.console import progress


class ReportProgress(TrainerCallback):
    def __init__(self, bar: progress.Bar, tokens_per_step: float):
        self.bar, self.tokens_per_step = bar, tokens_per_step
        self.bar.fields.update({"loss": "-", "speed": "-"})
        self.first_step, self.started = 0, time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.first_step, self.started = state.global_step, time.monotonic()  # a resumed run starts part-way
        self.bar.resume_at(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        seconds = max(time.monotonic() - self.started, 1e-9)
        speed = (state.global_step - self.first_step) * self.tokens_per_step / seconds
        progress.advance(state.global_step - self.bar.completed, bar=self.bar, speed=f"{speed:.0f} tokens/s")

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.bar.fields["loss"] = f"{logs['loss']:.3f}"
        if "eval_loss" in logs:
            self.bar.fields["validation loss"] = f"{logs['eval_loss']:.3f}"
