"""A causal LM's parameter counts and dimensions, read from its config on PyTorch's meta device (no weights
are loaded, so any architecture and size works): what memory estimates and methods' parameter counts need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelShape:
    total_params: int
    layer_linear_params: int  # nn.Linear weights inside decoder blocks: what QLoRA quantizes
    largest_linear: int
    linear_kinds: dict[str, tuple[int, int, int]]  # kind (q_proj, ...) -> (in_features, out_features, count)
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_dim: int
    vocab: int


def hidden_size(path: str, trust_remote_code: bool = False) -> int | None:
    """The model's hidden width from its config, or None where the config does not say (the defaults that scale
    with width fall back to their plain values)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return None
    return getattr(config.get_text_config(), "hidden_size", None)


def model_shape(config_or_path: Any, trust_remote_code: bool = False) -> ModelShape:
    """Parameter counts and dimensions of a causal LM, from its config alone."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = config_or_path
    if isinstance(config_or_path, str):
        config = AutoConfig.from_pretrained(config_or_path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    kinds: dict[str, tuple[int, int, int]] = {}
    layer_linear = largest = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ".layers." in name:
            kind = name.rsplit(".", 1)[-1]
            _, _, count = kinds.get(kind, (0, 0, 0))
            kinds[kind] = (module.in_features, module.out_features, count + 1)
            layer_linear += module.weight.numel()
            largest = max(largest, module.weight.numel())
    hidden = config.hidden_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return ModelShape(
        total_params=sum(p.numel() for p in model.parameters()),
        layer_linear_params=layer_linear,
        largest_linear=largest,
        linear_kinds=kinds,
        hidden=hidden,
        layers=config.num_hidden_layers,
        intermediate=getattr(config, "intermediate_size", 4 * hidden),
        heads=heads,
        kv_dim=(getattr(config, "num_key_value_heads", None) or heads) * head_dim,
        vocab=config.vocab_size,
    )


def linear_targets(shape: ModelShape, targets: tuple[str, ...] | list[str] | str) -> list[tuple[int, int, int]]:
    """(in_features, out_features, count) of the decoder linear layers named by `targets` ("all-linear": all)."""
    if targets == "all-linear" or tuple(targets) == ("all-linear",):
        return list(shape.linear_kinds.values())
    return [shape.linear_kinds[t] for t in targets if t in shape.linear_kinds]
