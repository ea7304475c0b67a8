"""Bottleneck adapters (Houlsby) after the attention and feed-forward blocks; see houlsby.py."""

from pathlib import Path
from typing import Literal

from pydantic import Field

from tunesmith.models.shape import ModelShape
from tunesmith.search.space import choice, rate, span
from tunesmith.training.methods.base import MethodDefaults, Settings, TrainingMethod, base_for_training, load_base


class AdapterSettings(Settings):
    bottleneck: int = Field(64, ge=1)  # width of each adapter's hidden layer
    activation: Literal["relu", "gelu", "silu"] = "relu"


def build(base: str, config, precision, trust_remote_code: bool = False):
    from tunesmith.training.methods.houlsby import add_adapters

    settings = config.adapter
    return add_adapters(
        base_for_training(base, config, precision, trust_remote_code), settings.bottleneck, settings.activation
    )


def save(model, out_dir: Path) -> None:
    from tunesmith.training.methods.houlsby import save_adapters

    save_adapters(model, out_dir)


def load(base: str, trained_dir: str, precision, trust_remote_code: bool = False):
    from tunesmith.training.methods.houlsby import load_adapters

    return load_adapters(load_base(base, trust_remote_code, precision.dtype), Path(trained_dir))


def trainable_params(shape: ModelShape, training) -> int:
    """Two adapters per layer, each down (h*m + m) and up (m*h + h)."""
    m, h = training.adapter.bottleneck, shape.hidden
    return shape.layers * 2 * (h * m + m + m * h + h)


def activation_elements(shape: ModelShape, training) -> float:
    return 2 * (shape.hidden + 2 * training.adapter.bottleneck)


METHOD = TrainingMethod(
    name="adapter",
    defaults=MethodDefaults(learning_rate=2e-4, weight_decay=0.0),
    search_space={
        "learning_rate": rate(5e-5, 2e-3),
        "epochs": span(1, 4),
        "adapter.bottleneck": choice(16, 32, 64, 128),
    },
    build=build,
    save=save,
    load=load,
    merged=None,  # adapters sit in sequence with the block, so they cannot fold into its weights
    trainable_params=trainable_params,
    settings_key="adapter",
    settings=AdapterSettings,
    activation_elements=activation_elements,
    describe=lambda training: f"bottleneck adapters of width {training.adapter.bottleneck}",
)
