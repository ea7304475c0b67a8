"""Load what a training run produced, for evaluation, benchmarks and serving."""

from __future__ import annotations

from tunesmith.models.hardware import Precision
from tunesmith.models.load import load_tokenizer
from tunesmith.training.methods import METHODS


def load_trained(
    base: str, method: str, trained_dir: str, precision: Precision, trust_remote_code: bool = False, merge: bool = True
):
    """Return (model, tokenizer) in eval mode; adapters that can merge are merged (same outputs, less work)."""
    module = METHODS[method]
    if merge and module.CAN_MERGE:
        model = module.merged(base, trained_dir, precision, trust_remote_code)
    else:
        model = module.load(base, trained_dir, precision, trust_remote_code)
    model.to(precision.device)
    model.eval()
    if method == "prompt":
        model.register_forward_hook(_drop_virtual_positions, with_kwargs=True)
    return model, load_tokenizer(trained_dir, trust_remote_code)


def _drop_virtual_positions(module, args, kwargs, output):
    """PEFT prompt tuning returns logits for its virtual tokens ahead of the input's; callers that read
    logits by input position (lm-eval among them) need exactly one row per input token."""
    input_ids = kwargs.get("input_ids", args[0] if args else None)
    if input_ids is not None and output.logits.shape[1] > input_ids.shape[1]:
        output.logits = output.logits[:, -input_ids.shape[1] :]
    return output
