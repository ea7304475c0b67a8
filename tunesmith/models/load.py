"""Load a base causal LM and its tokenizer for inference."""

from __future__ import annotations

from tunesmith.records import Precision


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, precision: Precision, trust_remote_code: bool = False):
    """Return (model, tokenizer) in eval mode on the precision's device."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=precision.torch_dtype, trust_remote_code=trust_remote_code)
    model.to(precision.device)
    model.eval()
    return model, load_tokenizer(path, trust_remote_code)
