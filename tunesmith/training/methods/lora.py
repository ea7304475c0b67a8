"""LoRA (and its DoRA and rsLoRA variants) through PEFT: low-rank updates on chosen linear layers."""

from typing import Literal

from pydantic import Field

from tunesmith.models.shape import ModelShape, linear_targets
from tunesmith.search.space import choice, rate, span
from tunesmith.training.methods.base import (
    LLAMA_WIDTH_EXPONENT,
    MethodDefaults,
    Settings,
    TrainingMethod,
    base_for_training,
    load_peft,
    merged_peft,
)
from tunesmith.training.methods.base import save_peft as save

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
SEARCH_SPACE = {
    "learning_rate": rate(5e-5, 5e-3),
    "epochs": span(1, 4),
    "lora.r": choice(8, 16, 32, 64),
    "lora.target_modules": choice("all-linear", ATTENTION),
}


class LoraSettings(Settings):
    r: int = Field(16, ge=1)  # rank of the update matrices
    alpha: int = Field(32, ge=1)  # the update is scaled by alpha / r
    dropout: float = Field(0.05, ge=0.0, le=1.0)  # dropout on the LoRA input
    # Every linear layer of the decoder (MLP included): attention-only LoRA trails full fine-tuning on SFT, and
    # with all layers it matches it at ~10x full fine-tuning's learning rate ("LoRA Without Regret", 2025).
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    use_dora: bool = False  # DoRA: magnitude and direction of the update trained apart
    use_rslora: bool = False  # rank-stabilised scaling, alpha / sqrt(r)


def peft_config(config, use_dora: bool | None = None):
    from peft import LoraConfig

    lora = config.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        use_dora=lora.use_dora if use_dora is None else use_dora,
        use_rslora=lora.use_rslora,
        task_type="CAUSAL_LM",
    )


def build(base: str, config, precision, trust_remote_code: bool = False):
    from peft import get_peft_model

    return get_peft_model(
        base_for_training(base, config, precision, trust_remote_code, frozen=True), peft_config(config)
    )


def trainable_params(shape: ModelShape, training) -> int:
    """Matches PEFT's count: r * (fan_in + fan_out) per targeted matrix."""
    r = training.lora.r
    return sum(count * r * (fan_in + fan_out) for fan_in, fan_out, count in linear_targets(shape, _targets(training)))


def activation_elements(shape: ModelShape, training) -> float:
    """Each targeted layer also keeps its input and the rank-r intermediate for the backward pass."""
    r = training.lora.r
    return sum(count / shape.layers * (fan_in + r) for fan_in, _, count in linear_targets(shape, _targets(training)))


def describe(training) -> str:
    targets = _targets(training)
    return f"LoRA rank {training.lora.r} on {targets if isinstance(targets, str) else ', '.join(targets)}"


def _targets(training):
    return training.lora.target_modules


METHOD = TrainingMethod(
    name="lora",
    defaults=MethodDefaults(learning_rate=5e-4, weight_decay=0.0, width_exponent=LLAMA_WIDTH_EXPONENT),
    search_space=SEARCH_SPACE,
    build=build,
    save=save,
    load=load_peft,
    merged=merged_peft,
    trainable_params=trainable_params,
    settings_key="lora",
    settings=LoraSettings,
    peft_adapter=True,
    frozen_in_compute_dtype=True,
    activation_elements=activation_elements,
    describe=describe,
)
