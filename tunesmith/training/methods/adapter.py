"""Bottleneck adapters (Houlsby) after the attention and feed-forward blocks; see houlsby.py."""

from pathlib import Path
from typing import Literal

from pydantic import Field

from tunesmith.models.shape import ModelShape
from tunesmith.search.space import choice, rate, span
from tunesmith.training.methods.base import (
    LLAMA_WIDTH_EXPONENT,
    MethodDefaults,
    Settings,
    TrainingMethod,
    base_for_training,
    load_base,
)


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
    # Measured on the banking77 slice (SmolLM2-135M, 3 epochs): 2e-4 reached 0.688 accuracy, 1e-3 0.836 (93% of
    # full fine-tuning). A bottleneck adapter's up-projection starts at zero like LoRA's B, so its rate follows
    # the same width fit, anchored at 1e-3 for hidden 576 (3.8e-4 at Llama-3.2-1B's 2048, 1.3e-4 at 70B).
    defaults=MethodDefaults(learning_rate=3.8e-4, weight_decay=0.0, width_exponent=LLAMA_WIDTH_EXPONENT),
    search_space={
        "learning_rate": rate(5e-5, 3e-3),
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
