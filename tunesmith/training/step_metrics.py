"""TRL's supervised trainer with its step metrics kept on the device until a logging step reads them.

TRL 1.16's SFTTrainer reads the entropy, token accuracy and token count of every micro-batch with `.item()` (and
a tensor comparison in an `if`): four waits for the GPU per micro-step, each leaving it idle while Python queues the
next kernels. Here the same sums stay on the device and are read, gathered over ranks, once per logging step. The
loss is TRL's own formula on its fused LM head, unchanged; any other loss path (a custom loss, label smoothing,
DFT, sequence parallelism, MoE auxiliary losses) goes through TRL's code as it is.
"""

from __future__ import annotations

import torch
from trl import SFTTrainer

SUMS = ("entropy", "correct", "valid", "tokens")


class SFTTrainerMetricsOnDevice(SFTTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sums: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}

    def _plain_loss(self, return_outputs: bool) -> bool:
        parallelism = getattr(self.accelerator, "parallelism_config", None)
        return not (
            return_outputs
            or self.compute_loss_func is not None
            or self.label_smoother is not None
            or self.args.loss_type != "nll"
            or self.aux_loss_enabled
            or getattr(parallelism, "sp_enabled", False)
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self._plain_loss(return_outputs):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        inputs["use_cache"] = False  # a cache would also turn off the document mask of packed rows
        outputs = model(**inputs, fused_lm_head=True)
        num_tokens = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
        # TRL's loss: the summed log-likelihood over the tokens of the whole accumulated batch (a batch without
        # trainable tokens reduces to zero, not 0 / 0)
        loss = -outputs.log_probs.sum() / torch.as_tensor(num_tokens).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        seen = inputs["attention_mask"].sum() if "attention_mask" in inputs else inputs["position_ids"].size(1)
        self._add(mode, entropy=outputs.entropy.detach().sum(), correct=outputs.is_top1.sum(),
                  valid=outputs.label_mask.sum(), tokens=torch.as_tensor(seen))  # fmt: skip
        return loss

    def _add(self, mode: str, **sums: torch.Tensor) -> None:
        kept = self._sums[mode]
        for key, value in sums.items():
            value = value.detach().to(self.accelerator.device, torch.float64)
            kept[key] = kept[key] + value if key in kept else value

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        kept, self._sums[mode] = self._sums[mode], {}
        if kept:  # every rank logs at the same step, so the gather meets on all of them
            local = torch.stack([kept.get(k, torch.zeros((), dtype=torch.float64, device=self.accelerator.device))
                                 for k in SUMS])  # fmt: skip
            entropy, correct, valid, tokens = self.accelerator.gather_for_metrics(local[None]).sum(0).tolist()
            self._metrics[mode]["entropy"] = [entropy / valid if valid else 0.0]
            self._metrics[mode]["mean_token_accuracy"] = [correct / valid if valid else 0.0]
            if mode == "train":
                self._total_train_tokens += int(tokens) // self._tp_size
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        super().log(logs, start_time)
