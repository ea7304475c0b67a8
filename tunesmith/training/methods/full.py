"""Full fine-tuning: every weight trains."""

from tunesmith.search.space import rate, span
from tunesmith.training.methods.base import (
    LLAMA_WIDTH_EXPONENT,
    MethodDefaults,
    TrainingMethod,
    base_for_training,
    load_full,
    save_full,
)


def build(base: str, config, precision, trust_remote_code: bool = False):
    return base_for_training(base, config, precision, trust_remote_code)


METHOD = TrainingMethod(
    name="full",
    defaults=MethodDefaults(learning_rate=5e-5, weight_decay=0.01, width_exponent=LLAMA_WIDTH_EXPONENT),
    search_space={"learning_rate": rate(5e-6, 5e-4), "epochs": span(1, 4)},
    build=build,
    save=save_full,
    load=load_full,
    merged=None,  # nothing to merge: the output is a whole model
    trainable_params=lambda shape, training: shape.total_params,
    adds_weights=False,
)
