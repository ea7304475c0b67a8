"""Bottleneck adapters (Houlsby) after the attention and feed-forward blocks; see houlsby.py."""

from pathlib import Path

from tunesmith.training.methods.base import MethodDefaults, load_base
from tunesmith.training.methods.houlsby import add_adapters, load_adapters, save_adapters

DEFAULTS = MethodDefaults(learning_rate=2e-4, epochs=2.0, weight_decay=0.0)
CAN_MERGE = False  # adapters sit in sequence with the block, so they cannot fold into its weights


def build(base: str, config, precision, trust_remote_code: bool = False):
    settings = config.adapter
    return add_adapters(load_base(base, trust_remote_code), settings.bottleneck, settings.activation)


def save(model, out_dir: Path) -> None:
    save_adapters(model, out_dir)


def load(base: str, trained_dir: str, precision, trust_remote_code: bool = False):
    return load_adapters(load_base(base, trust_remote_code, precision.dtype), Path(trained_dir))
