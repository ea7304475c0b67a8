"""The distributed strategies, each declared once: what it shards, where it runs, how accelerate launches it.

The schema takes its choices from here, the memory estimate its sharding, the launcher its accelerate type; a
strategy added here reaches all three. This module imports nothing of Tunesmith's, so any module may use it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    name: str
    accelerate_type: str  # accelerate's distributed_type
    shards_states: bool = False  # optimizer states and gradients split over the devices
    shards_weights: bool = False  # the weights too (gathered a few layers at a time)
    needs_cuda: bool = False  # FSDP and DeepSpeed do not run on CPUs through transformers
    package: str | None = None  # the Python package it needs beyond the default install
    sharding_note: str = "every device holds a full replica"


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("none", "NO"),
        Strategy("ddp", "MULTI_GPU"),
        Strategy("fsdp2", "FSDP", True, True, True, None,
                 "weights, gradients and optimizer states sharded; two layers gathered at a time"),
        Strategy("deepspeed_zero2", "DEEPSPEED", True, False, True, "deepspeed",
                 "optimizer states and gradients sharded, weights replicated"),
        Strategy("deepspeed_zero3", "DEEPSPEED", True, True, True, "deepspeed",
                 "weights, gradients and optimizer states sharded; two layers gathered at a time"),
    )
}  # fmt: skip
SHARDED = tuple(name for name, s in STRATEGIES.items() if s.shards_weights)  # strategies that shard the parameters

# Sharding needs every rank to build the same module tree before it is wrapped; the bottleneck adapter adds its
# modules after loading in a way FSDP's wrapping policy and ZeRO-3's partitioning do not see.
NOT_SHARDABLE = {"adapter": "the bottleneck adapter"}


def strategy(name: str) -> Strategy:
    return STRATEGIES[name]


def unsupported(method: str, strategy_name: str) -> str | None:
    """Why `method` cannot train under `strategy_name`, or None when it can."""
    if STRATEGIES[strategy_name].shards_weights and method in NOT_SHARDABLE:
        replicated = [n for n, s in STRATEGIES.items() if n != "none" and not s.shards_weights]
        return f"{NOT_SHARDABLE[method]} cannot be trained with {strategy_name}: use {' or '.join(replicated)}"
    return None
