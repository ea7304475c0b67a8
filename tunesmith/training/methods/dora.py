"""DoRA: LoRA with the update split into magnitude and direction (training.lora.* configures it)."""

from tunesmith.training.methods import lora
from tunesmith.training.methods.base import MethodDefaults, load_base
from tunesmith.training.methods.base import load_peft as load
from tunesmith.training.methods.base import merged_peft as merged
from tunesmith.training.methods.base import save_peft as save

DEFAULTS = MethodDefaults(learning_rate=2e-4, epochs=2.0, weight_decay=0.0)
CAN_MERGE = True


def build(base: str, config, precision, trust_remote_code: bool = False):
    from peft import get_peft_model

    return get_peft_model(load_base(base, trust_remote_code), lora.peft_config(config, use_dora=True))


__all__ = ["CAN_MERGE", "DEFAULTS", "build", "load", "merged", "save"]
