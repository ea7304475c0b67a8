"""LoRA (and its DoRA and rsLoRA variants) through PEFT: low-rank updates on chosen linear layers."""

from tunesmith.training.methods.base import MethodDefaults, load_base
from tunesmith.training.methods.base import load_peft as load
from tunesmith.training.methods.base import merged_peft as merged
from tunesmith.training.methods.base import save_peft as save

DEFAULTS = MethodDefaults(learning_rate=2e-4, epochs=2.0, weight_decay=0.0)
CAN_MERGE = True


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

    return get_peft_model(load_base(base, trust_remote_code), peft_config(config))


__all__ = ["CAN_MERGE", "DEFAULTS", "build", "load", "merged", "peft_config", "save"]
