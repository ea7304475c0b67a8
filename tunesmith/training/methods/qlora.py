"""QLoRA: the base model in 4-bit NF4 with double quantization (bitsandbytes) plus LoRA adapters."""

from typing import Literal

from tunesmith.training.distributed.strategies import SHARDED
from tunesmith.training.methods import lora
from tunesmith.training.methods.base import (
    Settings,
    TrainingMethod,
    load_base,
    save_peft,
    training_settings,
)

NF4_BYTES = 0.5
# bitsandbytes keeps one absmax per 64 weights: fp32 (4 bytes) plainly, or 8-bit with a second fp32
# constant per 256 blocks when double-quantized (about 0.127 bits per weight).
QUANT_CONSTANT_BYTES = {False: 4 / 64, True: 1 / 64 + 4 / (64 * 256)}


class QLoraSettings(Settings):
    quant_type: Literal["nf4", "fp4"] = "nf4"  # 4-bit data type of the frozen base
    double_quant: bool = True  # quantize the quantization constants too (about 0.37 bits per weight less)
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: the run's precision


def compute_dtype(settings, precision) -> str:
    return precision.dtype if settings.compute_dtype == "auto" else settings.compute_dtype


def quantization_config(settings, precision, strategy: str = "none"):
    import torch
    from transformers import BitsAndBytesConfig

    dtype = getattr(torch, compute_dtype(settings, precision))
    extra = {}
    if strategy in SHARDED:
        # FSDP and ZeRO-3 shard tensors of one dtype: the packed 4-bit weights are stored as the compute dtype.
        extra["bnb_4bit_quant_storage"] = dtype
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=settings.quant_type,
        bnb_4bit_use_double_quant=settings.double_quant,
        bnb_4bit_compute_dtype=dtype,
        **extra,
    )


def load_quantized(base: str, settings, precision, trust_remote_code: bool = False, strategy: str = "none"):
    import os

    from transformers import AutoModelForCausalLM

    placement = {}
    if strategy not in SHARDED and precision.device == "cuda" and "LOCAL_RANK" in os.environ:
        placement["device_map"] = {"": int(os.environ["LOCAL_RANK"])}  # each data-parallel rank on its own GPU
    return AutoModelForCausalLM.from_pretrained(
        base,
        quantization_config=quantization_config(settings, precision, strategy),
        dtype=compute_dtype(settings, precision),
        trust_remote_code=trust_remote_code,
        **placement,
    )


def build(base: str, config, precision, trust_remote_code: bool = False):
    from peft import get_peft_model, prepare_model_for_kbit_training

    model = prepare_model_for_kbit_training(
        load_quantized(base, config.qlora, precision, trust_remote_code, config.distributed.strategy),
        use_gradient_checkpointing=config.gradient_checkpointing,
    )
    return get_peft_model(model, lora.peft_config(config))


def _settings(trained_dir: str) -> QLoraSettings:
    """The quantization the adapter was trained on, as recorded beside it (defaults for older folders)."""
    return QLoraSettings(**training_settings(trained_dir).get("qlora", {}))


def load(base: str, trained_dir: str, precision, trust_remote_code: bool = False):
    """The adapter on the same 4-bit base it was trained on, so outputs match training exactly."""
    from peft import PeftModel

    return PeftModel.from_pretrained(
        load_quantized(base, _settings(trained_dir), precision, trust_remote_code), trained_dir
    )


def merged(base: str, trained_dir: str, precision, trust_remote_code: bool = False):
    """A plain model: the 4-bit weights dequantized exactly as the forward pass sees them, plus the adapter.

    Merging into the 4-bit layers instead would quantize the sum again and change the outputs.
    """
    import bitsandbytes as bnb
    import torch
    from peft import PeftModel

    quantized = load_quantized(base, _settings(trained_dir), precision, trust_remote_code)
    plain = load_base(base, trust_remote_code, "float32")
    for name, module in quantized.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            weight = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state)
            plain.get_submodule(name).weight.data.copy_(weight.to(torch.float32))
    return PeftModel.from_pretrained(plain, trained_dir).merge_and_unload()


def weight_bytes(training) -> float:
    return NF4_BYTES + QUANT_CONSTANT_BYTES[training.qlora.double_quant]


def describe(training) -> str:
    bits = weight_bytes(training) * 8
    double = "double " if training.qlora.double_quant else ""
    quantized = f"decoder linear layers in 4-bit NF4 ({bits:.3f} bits per weight with {double}quantization constants)"
    return f"{lora.describe(training)}; {quantized}"


METHOD = TrainingMethod(
    name="qlora",
    defaults=lora.METHOD.defaults,
    search_space=lora.SEARCH_SPACE,
    build=build,
    save=save_peft,
    load=load,
    merged=merged,
    trainable_params=lora.trainable_params,
    settings_key="qlora",
    settings=QLoraSettings,
    peft_adapter=True,
    activation_elements=lora.activation_elements,
    quantized_weight_bytes=weight_bytes,
    # Paged optimizer states spill to CPU memory instead of failing on a spike (the QLoRA paper's setup).
    optimizer=lambda on_cuda: "paged_adamw_32bit" if on_cuda else "adamw_torch",
    describe=describe,
)
