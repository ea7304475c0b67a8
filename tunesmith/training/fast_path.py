"""The speed switches of a training, resolved for the device it runs on.

Each is a training.* key whose default, `auto`, turns it on where it is known to help and is available: on a
GPU, the frozen base in the compute dtype, FlashAttention with padding-free batches (flex attention for packed
ones without flash-attn), fused AdamW, Liger's kernels and torch.compile; on a CPU, none of them (the CPU path is
measured by benchmarks/training_throughput.py). A switch set to true where it cannot work is a config error, not
a silent fall-back.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from tunesmith.errors import UsageError
from tunesmith.records import Precision

if TYPE_CHECKING:  # the schema validates method sections with the method registry, which builds through here
    from tunesmith.config.schema import TrainingConfig

# Attention implementations that take sequence boundaries from position_ids (varlen kernels): with them a
# padding-free batch costs what its tokens cost; with sdpa/eager, transformers builds a block-diagonal mask over
# the whole flattened batch instead, correct but quadratic in the batch's total length.
VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3")


class FastPathError(UsageError):
    """A speed switch was turned on where it cannot run."""


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class FastPath:
    attention: str
    padding_free: bool
    fused_optimizer: bool
    liger: bool
    frozen_dtype: str  # dtype of the base weights an adapter method leaves frozen
    compile: bool = False
    tokens_per_batch: int | None = None  # packed micro-batches of this many tokens; None: batches of examples
    why: dict[str, str] = field(default_factory=dict)

    def params(self) -> dict[str, str | bool]:
        return {k: v for k, v in asdict(self).items() if k != "why"}


def _attention(config: TrainingConfig, cuda: bool, packed: bool) -> tuple[str, str]:
    if config.attention != "auto":
        if config.attention in VARLEN_ATTENTION and not (cuda and _installed("flash_attn")):
            raise FastPathError(
                f"training.attention {config.attention} needs a CUDA GPU and the flash-attn package",
                "training.attention",
                "install flash-attn on a GPU machine, or use auto or sdpa",
            )
        return config.attention, "training.attention"
    if cuda and _installed("flash_attn"):
        return "flash_attention_2", "auto: CUDA with flash-attn installed"
    if cuda and packed:  # PyTorch's own block-sparse kernel: a document mask costs only the blocks it keeps
        return "flex_attention", "auto: packed batches on CUDA without flash-attn"
    return "sdpa", "auto: " + ("flash-attn not installed" if cuda else "CPU")


def _switch(value: bool | str, name: str, available: bool, missing: str) -> tuple[bool, str]:
    if value == "auto":
        return available, "auto: " + ("available" if available else missing)
    if value and not available:
        raise FastPathError(f"training.{name} is on, but {missing}", f"training.{name}", "set it to auto or false")
    return bool(value), f"training.{name}"


def frozen_dtype(config: TrainingConfig, device: str, dtype: str) -> str:
    """The dtype of the base weights an adapter method leaves frozen (the memory estimate uses it too)."""
    if config.frozen_weights == "auto":
        return dtype if device == "cuda" else "float32"
    return dtype if config.frozen_weights == "compute" else "float32"


def _liger_available(device: str) -> bool:
    return device == "cuda" and _installed("liger_kernel")


def liger_on(config: TrainingConfig, device: str) -> bool:
    """Whether Liger's kernels run (the memory estimate uses it too); `resolve` refuses `true` where they cannot."""
    available = _liger_available(device)
    return available if config.liger == "auto" else bool(config.liger) and available


def _compile(config: TrainingConfig, cuda: bool) -> tuple[bool, str]:
    """auto: on CUDA, for one process or DDP; sharded strategies wrap the model in ways this project has not yet
    measured under torch.compile, so they keep eager mode unless training.compile says otherwise."""
    if config.compile != "auto":
        return bool(config.compile), "training.compile"
    if not cuda:
        return False, "auto: CPU"
    if config.distributed.strategy not in ("none", "ddp"):
        return False, f"auto: not under {config.distributed.strategy}"
    return True, "auto: CUDA"


def resolve(config: TrainingConfig, precision: Precision) -> FastPath:
    cuda = precision.device == "cuda"
    packed = isinstance(config.tokens_per_batch, int)  # as the plan resolved it
    attention, attention_why = _attention(config, cuda, packed)
    varlen = attention in VARLEN_ATTENTION
    padding_free, padding_why = (
        (varlen, "auto: " + ("varlen attention" if varlen else f"{attention} attention: length grouping instead"))
        if config.padding_free == "auto"
        else (bool(config.padding_free), "training.padding_free")
    )
    if packed:
        padding_free, padding_why = True, "packed micro-batches (training.tokens_per_batch)"
    compiled, compile_why = _compile(config, cuda)
    fused, fused_why = (  # torch's fused AdamW runs on CPUs too, but it is measured to help on GPUs
        (cuda, "auto: " + ("CUDA" if cuda else "CPU"))
        if config.fused_optimizer == "auto"
        else (bool(config.fused_optimizer), "training.fused_optimizer")
    )
    liger, liger_why = _switch(
        config.liger,
        "liger",
        _liger_available(precision.device),
        "Liger kernels need a CUDA GPU and the liger-kernel package",
    )
    frozen = frozen_dtype(config, precision.device, precision.dtype)
    frozen_why = "training.frozen_weights" if config.frozen_weights != "auto" else f"auto on {precision.device}"
    return FastPath(
        attention, padding_free, fused, liger, frozen, compiled, int(config.tokens_per_batch) if packed else None,
        {"attention": attention_why, "padding_free": padding_why, "fused_optimizer": fused_why,
         "liger": liger_why, "frozen_dtype": frozen_why, "compile": compile_why},
    )  # fmt: skip


def skip_adapter_input_casts(model, precision: Precision) -> int:
    """Let adapter layers take activations in the compute dtype under mixed precision; returns how many.

    PEFT casts each adapted layer's input to the adapter's fp32 dtype, and autocast casts it straight back to the
    half dtype for the adapter's matmuls: two full-size copies of the activations per adapted layer and pass, the
    same numbers (the round trip is exact). On an H100 they were a fifth of a LoRA step's GPU time at 1B. Without
    autocast (fp32 training) input and adapter share a dtype and PEFT's cast is already a no-op."""
    if precision.dtype not in ("bfloat16", "float16"):
        return 0
    layers = [m for m in model.modules() if getattr(m, "cast_input_dtype_enabled", False)]
    for layer in layers:
        layer.cast_input_dtype_enabled = False
    return len(layers)
