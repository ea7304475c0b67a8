"""Full fine-tuning: every weight trains."""

from tunesmith.training.methods.base import MethodDefaults, load_base
from tunesmith.training.methods.base import load_full as load
from tunesmith.training.methods.base import save_full as save

DEFAULTS = MethodDefaults(learning_rate=2e-5, epochs=2.0, weight_decay=0.01)
CAN_MERGE = False  # nothing to merge: the output is a whole model


def build(base: str, config, precision, trust_remote_code: bool = False):
    return load_base(base, trust_remote_code)


__all__ = ["CAN_MERGE", "DEFAULTS", "build", "load", "save"]
