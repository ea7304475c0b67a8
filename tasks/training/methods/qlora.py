"""QLoRA: the base model in 4-bit NF4 with double quantization (bitsandbytes) plus LoRA adapters."""

from tasks.training.methods import lora
from tasks.training.methods.base import MethodDefaults
from tasks.training.methods.base import save_peft as save

DEFAULTS = MethodDefaults(learning_rate=2e-4, epochs=2.0, weight_decay=0.0)
CAN_MERGE = True


def compute_dtype(config, precision) -> str:
    chosen = config.qlora.compute_dtype
    return precision.dtype if chosen == "auto" else chosen


def quantization_config(config, precision):
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.qlora.quant_type,
        bnb_4bit_use_double_quant=config.qlora.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype(config, precision)),
    )


def load_quantized(base: str, config, precision, trust_remote_code: bool = False):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        base,
        quantization_config=quantization_config(config, precision),
        dtype=compute_dtype(config, precision),
        trust_remote_code=trust_remote_code,
    )


def build(base: str, config, precision, trust_remote_code: bool = False):
    from peft import get_peft_model, prepare_model_for_kbit_training

    model = prepare_model_for_kbit_training(
        load_quantized(base, config, precision, trust_remote_code),
        use_gradient_checkpointing=config.gradient_checkpointing,
    )
    return get_peft_model(model, lora.peft_config(config))


def load(base: str, trained_dir: str, precision, trust_remote_code: bool = False):
    """The adapter on the base model in full precision (merging into 4-bit weights would round them)."""
    return lora.load(base, trained_dir, precision, trust_remote_code)


__all__ = ["CAN_MERGE", "DEFAULTS", "build", "load", "save"]
