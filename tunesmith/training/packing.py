"""Micro-batches sized in tokens: which token budget a training packs its examples into.

With training.tokens_per_batch, TRL packs the tokenized examples best-fit-decreasing into sequences of at most the
budget, and its padding-free collator flattens each into one row whose position ids restart at every example.
The attention kernel keeps each example to itself: FlashAttention's varlen kernel reads the boundaries from the
collator's cumulative lengths, flex attention and sdpa from a block-diagonal (document) mask that transformers
builds from the position ids. So a micro-batch costs what its real tokens cost, and the step holds the tokens
its effective batch asks for in as few micro-batches as memory allows.

The effective batch stays what batch_size x accumulation x devices says in examples, counted in tokens at the
data's mean length: packing changes how the step is cut into micro-batches, not what one optimizer step learns
from (the learning rates are set for that batch).
"""

from __future__ import annotations

import math

from tunesmith.errors import UsageError

# The largest micro-batch `auto` packs: past about 16k tokens a GPU step is compute-bound at 1B and up, so a
# bigger one adds memory, not speed.
AUTO_MAX_TOKENS = 16384


class PackingError(UsageError):
    """training.tokens_per_batch was set where examples cannot be packed."""


def requested(tokens_per_batch: int | str, device: str, objective: str) -> int | str | None:
    """The budget a training asks for: an int, "auto" (sized from memory by the plan), or None (batches of
    examples). Packing is for supervised rows: TRL's preference trainers batch pairs in their own collators."""
    if tokens_per_batch == "off":
        return None
    if objective != "sft":
        if tokens_per_batch == "auto":
            return None
        raise PackingError(
            f"training.tokens_per_batch packs supervised examples; the {objective} objective batches pairs",
            "training.tokens_per_batch",
            "set it to auto or off, and size the batch with training.batch_size",
        )
    if tokens_per_batch == "auto":
        return "auto" if device == "cuda" else None
    return int(tokens_per_batch)


def tokens_per_step(batch_size: int, accumulation: int, mean_tokens: float) -> float:
    """The tokens one optimizer step of one process learns from: its effective batch at the data's mean length."""
    return batch_size * accumulation * mean_tokens


def budgets(request: int | str, per_step: float, longest: int) -> list[int]:
    """The budgets to try, largest first: the requested one; or for auto, powers of two from what one step holds
    (at most AUTO_MAX_TOKENS) down to the longest example, which every budget must fit whole."""
    floor = max(longest, 64)
    if request != "auto":
        if int(request) < longest:
            raise PackingError(
                f"training.tokens_per_batch {request} is shorter than the longest example ({longest} tokens)",
                "training.tokens_per_batch",
                f"set it to at least {longest}, or shorten training.max_seq_length",
            )
        return [int(request)]
    top = max(floor, min(AUTO_MAX_TOKENS, 2 ** math.ceil(math.log2(max(per_step, 1)))))
    found = [top]
    while found[-1] // 2 >= floor:
        found.append(found[-1] // 2)
    return found


def accumulation(per_step: float, budget: int) -> int:
    """Micro-batches per optimizer step that hold about the step's tokens."""
    return max(1, round(per_step / budget))


def micro_batches(rows: int, mean_tokens: float, budget: int) -> int:
    """About how many packed micro-batches an epoch makes (best-fit-decreasing fills nearly every one)."""
    return max(1, math.ceil(rows * mean_tokens / budget))
