"""DoRA: LoRA with the update split into magnitude and direction (training.lora.* configures it)."""

from tunesmith.models.shape import ModelShape, linear_targets
from tunesmith.training.methods import lora
from tunesmith.training.methods.base import (
    TrainingMethod,
    base_for_training,
    load_peft,
    merged_peft,
    save_peft,
)


def build(base: str, config, precision, trust_remote_code: bool = False):
    from peft import get_peft_model

    return get_peft_model(
        base_for_training(base, config, precision, trust_remote_code, frozen=True),
        lora.peft_config(config, use_dora=True),
    )


def _magnitudes(shape: ModelShape, training) -> list[tuple[int, float]]:
    return [(fan_out, count) for _, fan_out, count in linear_targets(shape, training.lora.target_modules)]


def trainable_params(shape: ModelShape, training) -> int:
    """LoRA's matrices plus one magnitude per output feature of each targeted matrix."""
    return lora.trainable_params(shape, training) + sum(
        count * fan_out for fan_out, count in _magnitudes(shape, training)
    )


def activation_elements(shape: ModelShape, training) -> float:
    return lora.activation_elements(shape, training) + sum(
        count / shape.layers * fan_out for fan_out, count in _magnitudes(shape, training)
    )


METHOD = TrainingMethod(
    name="dora",
    defaults=lora.METHOD.defaults,
    search_space=lora.SEARCH_SPACE,
    build=build,
    save=save_peft,
    load=load_peft,
    merged=merged_peft,
    trainable_params=trainable_params,
    peft_adapter=True,
    frozen_in_compute_dtype=True,
    activation_elements=activation_elements,
    describe=lora.describe,
    compare_by_default=False,
)
