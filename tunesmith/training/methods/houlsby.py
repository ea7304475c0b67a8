"""Houlsby-style bottleneck adapters, written here because no maintained implementation fits our stack.

PEFT has no bottleneck adapters, and AdapterHub's `adapters` package pins transformers 4.x, which cannot sit
beside transformers 5. Each adapter is down-projection -> nonlinearity -> up-projection with a residual,
the up-projection initialised to zero so a fresh adapter leaves the model unchanged (Houlsby et al., 2019).
One goes after the attention block and one after the feed-forward block of every decoder layer.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
CONFIG_FILE = "bottleneck_adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


class BottleneckAdapter(nn.Module):
    def __init__(self, hidden: int, bottleneck: int, activation: str = "relu"):
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


class WithAdapter(nn.Module):
    """Runs a sublayer, then the adapter on its output (the first element when it returns a tuple)."""

    def __init__(self, sublayer: nn.Module, adapter: BottleneckAdapter):
        super().__init__()
        self.sublayer = sublayer
        self.adapter = adapter

    def forward(self, *args, **kwargs):
        out = self.sublayer(*args, **kwargs)
        if isinstance(out, tuple):
            return (self.adapter(out[0]), *out[1:])
        return self.adapter(out)


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """Blocks that have both an attention and a feed-forward sublayer (Llama, Mistral, Qwen, ...)."""
    layers = [m for m in model.modules() if hasattr(m, "self_attn") and hasattr(m, "mlp")]
    if not layers:
        raise ValueError(
            "no decoder layers with self_attn and mlp found: bottleneck adapters do not support this model"
        )
    return layers


def add_adapters(model: nn.Module, bottleneck: int = 64, activation: str = "relu") -> nn.Module:
    """Freeze the model and insert trainable adapters after attention and feed-forward in every layer."""
    hidden = model.config.hidden_size
    for parameter in model.parameters():
        parameter.requires_grad = False
    dtype = next(model.parameters()).dtype
    for layer in decoder_layers(model):
        layer.self_attn = WithAdapter(layer.self_attn, BottleneckAdapter(hidden, bottleneck, activation).to(dtype))
        layer.mlp = WithAdapter(layer.mlp, BottleneckAdapter(hidden, bottleneck, activation).to(dtype))
    model.bottleneck_adapter_config = {"bottleneck": bottleneck, "activation": activation}
    return model


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().contiguous() for name, p in model.named_parameters() if ".adapter." in name}


def save_adapters(model: nn.Module, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state(model), str(out_dir / WEIGHTS_FILE))
    (out_dir / CONFIG_FILE).write_text(json.dumps(model.bottleneck_adapter_config, indent=2))


def load_adapters(model: nn.Module, trained_dir: Path) -> nn.Module:
    settings = json.loads((Path(trained_dir) / CONFIG_FILE).read_text())
    add_adapters(model, settings["bottleneck"], settings["activation"])
    missing = set(adapter_state(model)) - set(state := load_file(str(Path(trained_dir) / WEIGHTS_FILE)))
    if missing:
        raise ValueError(f"{trained_dir}: adapter weights missing for {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)
    return model
