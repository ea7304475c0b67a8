"""Prefix tuning through PEFT: learned key/value vectors prepended at every attention layer."""

import logging

import torch
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

log = logging.getLogger("tunesmith.training")


class PrefixSettings(Settings):
    num_virtual_tokens: int = Field(16, ge=1)  # key/value positions prepended at every layer
    projection: bool = False  # learn the prefix through an MLP (steadier, more memory)
    init_text: str | None = Field(None, min_length=1)  # start from the model's keys and values for this text


# Banking77 slice (8 intents, 60 steps), prefix started from real activations (real_token_prefix): 3e-3 reached
# accuracy 0.242, 1e-2 0.531, 3e-2 0.625 (from PEFT's N(0, 1) rows, 1e-2 had reached 0.219, below the untrained
# model's 0.312). 1e-2, PEFT's own examples' rate, rather than the best of a 60-step run, whose interval it
# overlaps: longer runs want lower rates; `tunesmith tune` searches up to 5e-2.
DEFAULTS = MethodDefaults(learning_rate=1e-2, weight_decay=0.0)


def build(base: str, config, precision, trust_remote_code: bool = False):
    from peft import PrefixTuningConfig, get_peft_model

    settings = config.prefix
    peft_config = PrefixTuningConfig(
        num_virtual_tokens=settings.num_virtual_tokens,
        prefix_projection=settings.projection,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base_for_training(base, config, precision, trust_remote_code), peft_config)
    if settings.projection:  # the rows are an MLP's input, not keys and values
        return model
    if any(p.device.type == "meta" or hasattr(p, "ds_id") for p in model.parameters()):
        # Weights not yet materialised in this process (sharded loading under FSDP or DeepSpeed ZeRO-3): no
        # forward pass to take activations from, so the prefix keeps PEFT's rows.
        log.warning("prefix tuning starts from PEFT's random rows: the weights are sharded while it is built")
        return model
    tokens = init_tokens(base, settings, model.get_input_embeddings().num_embeddings, trust_remote_code)
    embedding = model.prompt_encoder[model.active_adapter].embedding
    embedding.weight.data.copy_(real_token_prefix(model.get_base_model(), tokens))
    return model


def init_tokens(base: str, settings: PrefixSettings, vocab_size: int, trust_remote_code: bool = False) -> torch.Tensor:
    """`init_text`'s tokens repeated to the prefix's length, or (unset) as many drawn from the vocabulary."""
    n = settings.num_virtual_tokens
    if settings.init_text is None:
        return torch.randint(0, vocab_size, (n,))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    ids = tokenizer(settings.init_text, add_special_tokens=False)["input_ids"]
    return torch.tensor((ids * (n // len(ids) + 1))[:n])


@torch.no_grad()
def real_token_prefix(model, tokens: torch.Tensor) -> torch.Tensor:
    """The model's own keys and values for `tokens`, as the rows of PEFT's prefix embedding.

    PEFT initialises a prefix from N(0, 1), far off the scale of real keys and values (the default model's
    first-layer values have a standard deviation of 0.04), so at first it disturbs every layer. Starting from
    the activations of real words is what Li & Liang (2021, section 7.2) found works, low-data most of all."""
    training = model.training
    model.eval()  # no dropout, and a cache even where gradient checkpointing is on
    cache = model(input_ids=tokens[None].to(model.device), use_cache=True).past_key_values
    model.train(training)
    # Row j of PEFT's embedding is, per layer, the key then the value of virtual token j: view it as
    # (tokens, layers * 2, kv heads, head dim); peft_model.get_prompt reads it back that way.
    layers = [torch.stack([layer.keys[0], layer.values[0]]) for layer in cache.layers]  # (2, heads, tokens, dim)
    return torch.stack(layers).permute(3, 0, 1, 2, 4).reshape(len(tokens), -1).float()


def trainable_params(shape: ModelShape, training) -> int:
    """A key and a value vector per virtual token per layer."""
    return training.prefix.num_virtual_tokens * shape.layers * 2 * shape.kv_dim


METHOD = TrainingMethod(
    name="prefix",
    defaults=DEFAULTS,
    search_space={
        "learning_rate": rate(1e-3, 5e-2),
        "epochs": span(1, 4),
        "prefix.num_virtual_tokens": choice(8, 16, 32),
    },
    build=build,
    save=save_peft,
    load=load_peft,
    trainable_params=trainable_params,
    settings_key="prefix",
    settings=PrefixSettings,
    peft_adapter=True,
    starts_as_base=False,
    key_positions=lambda training: training.prefix.num_virtual_tokens,
    describe=lambda training: f"prefix of {training.prefix.num_virtual_tokens} virtual tokens",
)
