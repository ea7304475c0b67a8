"""Load a causal LM and its tokenizer, optionally with a trained adapter applied."""

from __future__ import annotations

from pathlib import Path

from tasks.models.hardware import Precision


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    path: str,
    precision: Precision,
    adapter: str | Path | None = None,
    trust_remote_code: bool = False,
):
    """Return (model, tokenizer) in eval mode on the precision's device; an adapter is merged in."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(str(adapter or path), trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=precision.torch_dtype, trust_remote_code=trust_remote_code)
    if adapter is not None:
        from peft import PeftModel

        # Merging gives the same outputs as the unmerged adapter, without its per-call overhead.
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.to(precision.device)
    model.eval()
    return model, tokenizer
