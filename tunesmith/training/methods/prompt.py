"""Prompt tuning through PEFT: learned soft-prompt embeddings at the input, optionally initialised from text."""

from pydantic import Field

from tunesmith.models.shape import ModelShape
from tunesmith.search.space import choice, rate, span
from tunesmith.training.methods.base import (
    MethodDefaults,
    Settings,
    TrainingMethod,
    base_for_training,
    load_peft,
    save_peft,
)


class PromptTuningSettings(Settings):
    num_virtual_tokens: int = Field(16, ge=1)  # learned embeddings placed before the input
    init_text: str | None = None  # start them from this text's tokens (from randomly drawn vocabulary otherwise)


# Banking77 slice (8 intents, 60 steps), prompts started from drawn vocabulary: 3e-4 reached accuracy 0.367, 3e-3
# 0.313, 1e-2 0.461 (the untrained model: 0.312), the range of PEFT's examples (1e-2 to 3e-2). From N(0, 1) rows
# 1e-2 had reached only 0.172. Prompt tuning approaches full fine-tuning only with models above ~10B parameters
# (Lester et al., 2021); on small ones it trails the other methods whatever the rate.
DEFAULTS = MethodDefaults(learning_rate=1e-2, weight_decay=0.0)


def build(base: str, config, precision, trust_remote_code: bool = False):
    from peft import PromptTuningConfig, PromptTuningInit, get_peft_model

    settings = config.prompt_tuning
    text = settings.init_text
    peft_config = PromptTuningConfig(
        num_virtual_tokens=settings.num_virtual_tokens,
        # Drawn vocabulary rows, not PEFT's RANDOM: that is N(0, 1), about seven times the norm of the default
        # model's token embeddings; random init trails vocabulary init most for small models (Lester et al., 2021).
        prompt_tuning_init=PromptTuningInit.TEXT if text else PromptTuningInit.SAMPLE_VOCAB,
        prompt_tuning_init_text=text,
        tokenizer_name_or_path=base if text else None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base_for_training(base, config, precision, trust_remote_code), peft_config)


def trainable_params(shape: ModelShape, training) -> int:
    return training.prompt_tuning.num_virtual_tokens * shape.hidden


def drop_virtual_positions_on_load(model):
    model.register_forward_hook(_drop_virtual_positions, with_kwargs=True)
    return model


def _drop_virtual_positions(module, args, kwargs, output):
    """PEFT prompt tuning returns logits for its virtual tokens ahead of the input's; callers that read
    logits by input position (lm-eval among them) need exactly one row per input token."""
    input_ids = kwargs.get("input_ids", args[0] if args else None)
    if input_ids is not None and output.logits.shape[1] > input_ids.shape[1]:
        output.logits = output.logits[:, -input_ids.shape[1] :]
    return output


METHOD = TrainingMethod(
    name="prompt",
    defaults=DEFAULTS,
    search_space={
        "learning_rate": rate(1e-4, 3e-2),
        "epochs": span(1, 4),
        "prompt_tuning.num_virtual_tokens": choice(8, 16, 32),
    },
    build=build,
    save=save_peft,
    load=load_peft,
    trainable_params=trainable_params,
    settings_key="prompt_tuning",
    settings=PromptTuningSettings,
    peft_adapter=True,
    starts_as_base=False,
    virtual_positions=lambda training: training.prompt_tuning.num_virtual_tokens,
    after_load=drop_virtual_positions_on_load,
    describe=lambda training: f"soft prompt of {training.prompt_tuning.num_virtual_tokens} virtual tokens",
)
