"""Training-memory estimates per method: weights, gradients, optimizer states, activations, overhead.

Shapes come from the model's own config (the model is built on PyTorch's meta device, so no weights are
loaded and any architecture works). Every estimate carries the assumptions it was computed under.
Units: GB = 1e9 bytes, as in the published figures this reproduces.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from tunesmith.config.schema import TrainingConfig
from tunesmith.models.shape import ModelShape
from tunesmith.training.distributed.strategies import STRATEGIES
from tunesmith.training.fast_path import frozen_dtype, liger_on
from tunesmith.training.methods import METHODS
from tunesmith.training.objectives import OBJECTIVES

BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "int8": 1.0}
GB = 1e9
CUDA_OVERHEAD_GB = 1.0  # CUDA context, cuBLAS workspaces and allocator slack
# Per vocabulary entry per token: logits in the model dtype, their fp32 copy and shifted copy for the loss,
# the saved log-softmax, the trainer's entropy/accuracy temporaries and the gradients flowing back.
LOGIT_BYTES_BEYOND_MODEL_DTYPE = 28
# TRL's fused LM head (trl/kernels/chunked_logprob.py, on by default since TRL 1.x) scores at most this many
# positions against this many vocabulary entries at a time, recomputing them in the backward pass: the logits of a
# batch never exist whole, so a long batch or a 128k vocabulary costs one chunk, not tokens x vocab.
LOGIT_TOKEN_CHUNK, LOGIT_VOCAB_CHUNK = 4096, 32768


@dataclass(frozen=True)
class Workload:
    """How training runs; the defaults describe Tunesmith's own CPU runs (fp32 master weights, AdamW)."""

    seq_len: int = 256
    batch_size: int = 8
    weight_dtype: str = "float32"
    # The base weights of a method that trains added weights only (training.frozen_weights); None: weight_dtype.
    frozen_dtype: str | None = None
    activation_dtype: str = "float32"
    optimizer: Literal["adamw", "adamw_8bit", "sgd"] = "adamw"
    optimizer_state_dtype: str = "float32"
    gradient_checkpointing: bool = False
    attention: Literal["sdpa", "eager"] = "sdpa"
    # Liger's SwiGLU kernel (training.liger) keeps the gate and up outputs and recomputes the SiLU in the backward
    # pass; PyTorch's MLP also keeps the SiLU output.
    fused_mlp: bool = False
    overhead_gb: float = 0.0  # CUDA context and allocator reserve; 0 on a CPU (RSS above the idle process)
    # Mixed-precision Adam as in the ZeRO paper: 16-bit weights and gradients, and an fp32 master copy of the
    # trainable weights beside the fp32 moments (12 bytes of optimizer state per parameter).
    master_weights: bool = False
    # How training is spread: each figure is per device. ddp replicates everything; deepspeed_zero2 shards
    # optimizer states and gradients over `devices`; fsdp2 and deepspeed_zero3 shard the weights too.
    strategy: str = "none"
    devices: int = 1
    gradient_accumulation_steps: int = 1
    # The methods' own settings (LoRA rank and targets, adapter width, ...), read by each method's memory figures.
    training: TrainingConfig = field(default_factory=TrainingConfig)


@dataclass
class MemoryEstimate:
    method: str
    trainable_params: int
    weights_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float
    overhead_gb: float
    total_gb: float
    assumptions: list[str] = field(default_factory=list)
    sharding_buffers_gb: float = 0.0  # with sharded weights: the layers gathered whole around the one computing
    # How training would run for this estimate: micro-batch, accumulation, checkpointing, strategy, devices.
    plan: dict[str, Any] = field(default_factory=dict)

    def model_states_gb(self) -> float:
        """Weights, gradients and optimizer states: what the ZeRO paper's per-device figures count."""
        return self.weights_gb + self.gradients_gb + self.optimizer_gb

    def where(self) -> str:
        """'per GPU, fsdp2 over 8 GPUs' and the like; empty for one device."""
        devices = self.plan.get("devices", 1)
        return f" per device, {self.plan.get('strategy')} over {devices} devices" if devices > 1 else ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def trainable_params(method: str, shape: ModelShape, w: Workload) -> int:
    """What the method trains: matches PEFT's counts for LoRA, DoRA, IA3, prefix and prompt tuning."""
    return METHODS[method].trainable_params(shape, w.training)


def _activation_elements(method: str, shape: ModelShape, w: Workload, seq: int) -> float:
    """Saved activations per token per layer, in elements, for a Llama-style block (RMSNorm, SwiGLU).

    2 norm inputs, 2 norm outputs, q/k/v, attention output, gate, up, SiLU output and their product:
    6h + 2kv + 4f (3f with Liger's SwiGLU, which recomputes the SiLU output). A frozen base saves about as
    much (measured on CPU: PyTorch keeps the inputs of frozen linear layers too), plus each method's own inputs.
    """
    h, kv, f = shape.hidden, shape.kv_dim, shape.intermediate
    spec = METHODS[method]
    elements = 6 * h + 2 * kv + (3 if w.fused_mlp else 4) * f + spec.activation_elements(shape, w.training)
    if w.attention == "eager":
        elements += shape.heads * (seq + spec.key_positions(w.training))
    return elements


def estimate(method: str, shape: ModelShape, w: Workload) -> MemoryEstimate:
    """Peak training memory for one method, with each component and the assumptions behind it."""
    spec = METHODS[method]
    trainable = trainable_params(method, shape, w)
    assumptions = [
        f"sequence length {w.seq_len}, batch size {w.batch_size}",
        f"weights in {w.weight_dtype}, activations in {w.activation_dtype}",
        f"optimizer {w.optimizer}" + (f" with {w.optimizer_state_dtype} states" if w.optimizer != "sgd" else ""),
        f"attention {w.attention}"
        + (" (scores kept for backward)" if w.attention == "eager" else " (no score matrix kept)"),
        "gradient checkpointing " + ("on" if w.gradient_checkpointing else "off"),
        *(["Liger's SwiGLU kernel (the SiLU output recomputed, not kept)"] if w.fused_mlp else []),
        f"runtime overhead {w.overhead_gb:g} GB",
    ]
    weights, logit_bytes = _weight_bytes(method, shape, w, trainable, assumptions)
    weights += _reference_bytes(method, shape, w, assumptions)
    if spec.describe:
        assumptions.append(spec.describe(w.training))
    gradients, optimizer = _state_bytes(w, trainable, assumptions)
    weights, gradients, optimizer, buffers = _sharded(shape, w, weights, gradients, optimizer, assumptions)
    activations = _activation_bytes(method, shape, w, logit_bytes, assumptions)
    total = weights + gradients + optimizer + activations + buffers + w.overhead_gb * GB
    return MemoryEstimate(
        method=method,
        trainable_params=trainable,
        weights_gb=weights / GB,
        gradients_gb=gradients / GB,
        optimizer_gb=optimizer / GB,
        activations_gb=activations / GB,
        overhead_gb=w.overhead_gb,
        total_gb=total / GB,
        assumptions=assumptions,
        sharding_buffers_gb=buffers / GB,
        plan={"batch_size": w.batch_size, "gradient_accumulation_steps": w.gradient_accumulation_steps,
              "gradient_checkpointing": w.gradient_checkpointing, "strategy": w.strategy,
              "devices": max(1, w.devices)},
    )  # fmt: skip


def _weight_bytes(method: str, shape: ModelShape, w: Workload, trainable: int, assumptions: list[str]):
    """(bytes of the weights, bytes per logit) for the method's storage of the base and its added weights."""
    spec = METHODS[method]
    weight_bytes, act_bytes = BYTES[w.weight_dtype], BYTES[w.activation_dtype]
    added = trainable if spec.adds_weights else 0
    if spec.quantized_weight_bytes is not None:
        quantized = shape.layer_linear_params
        per_weight = spec.quantized_weight_bytes(w.training)
        # prepare_model_for_kbit_training keeps everything not quantized (embeddings, head, norms) in fp32.
        weights = quantized * per_weight + (shape.total_params - quantized) * BYTES["float32"]
        weights += shape.largest_linear * act_bytes  # one matrix dequantized at a time for the matmul
        weights += added * weight_bytes
        assumptions.append("the rest of the model in float32")
        return weights, BYTES["float32"] + LOGIT_BYTES_BEYOND_MODEL_DTYPE
    frozen = w.frozen_dtype if (w.frozen_dtype and spec.frozen_in_compute_dtype) else w.weight_dtype
    base_bytes = BYTES[frozen]
    if frozen != w.weight_dtype:
        assumptions.append(f"the frozen base in {frozen}")
    weights = shape.total_params * base_bytes + added * weight_bytes
    if act_bytes < base_bytes:
        weights += shape.total_params * act_bytes  # autocast keeps a low-precision copy of each weight
        assumptions.append(f"autocast caches a {w.activation_dtype} copy of the weights during each step")
    return weights, act_bytes + LOGIT_BYTES_BEYOND_MODEL_DTYPE


def _objective(w: Workload):
    return OBJECTIVES.get(w.training.objective, OBJECTIVES["sft"])  # auto before the plan resolves it: supervised


def _reference_bytes(method: str, shape: ModelShape, w: Workload, assumptions: list[str]) -> float:
    """A preference objective's frozen reference model: a second copy of the weights when the method changes the
    base's own (full, Spectrum); none under an adapter, whose reference is the base with the adapter switched off."""
    objective = _objective(w)
    if not objective.needs_reference:
        return 0.0
    if METHODS[method].adds_weights:
        assumptions.append(f"{objective.name}: the reference is the base with the adapter off (no second copy)")
        return 0.0
    assumptions.append(f"{objective.name}: a frozen reference copy of the model in {w.weight_dtype}")
    return shape.total_params * BYTES[w.weight_dtype]


def _state_bytes(w: Workload, trainable: int, assumptions: list[str]) -> tuple[float, float]:
    """(gradient bytes, optimizer-state bytes) of the trainable weights."""
    weight_bytes = BYTES[w.weight_dtype]
    state_bytes = {"adamw": 2 * BYTES[w.optimizer_state_dtype], "adamw_8bit": 2.0, "sgd": 0.0}[w.optimizer]
    if w.master_weights and weight_bytes < BYTES["float32"]:
        state_bytes += BYTES["float32"]
        assumptions.append("an fp32 master copy of the trainable weights in the optimizer")
    return trainable * weight_bytes, trainable * state_bytes


def _sharded(shape: ModelShape, w: Workload, weights, gradients, optimizer, assumptions: list[str]):
    """Per-device (weights, gradients, optimizer, gather buffers) under the strategy."""
    shards, sharding = max(1, w.devices), STRATEGIES[w.strategy]
    buffers = 0.0
    if sharding.shards_states and shards > 1:
        gradients, optimizer = gradients / shards, optimizer / shards
        if sharding.shards_weights:
            # Each layer is gathered whole to compute it, and the next one is prefetched.
            buffers = 2 * (weights / max(1, shape.layers)) * (1 - 1 / shards)
            weights = weights / shards
        assumptions.append(f"{w.strategy} over {shards} devices: " + sharding.sharding_note)
    elif shards > 1:
        assumptions.append(f"{w.strategy} over {shards} devices: every device holds a full replica")
    return weights, gradients, optimizer, buffers


def _activation_bytes(method: str, shape: ModelShape, w: Workload, logit_bytes: float, assumptions: list[str]):
    """Saved activations of every layer (or of the layer inputs and one recomputed layer), plus the logits."""
    spec = METHODS[method]
    seq = w.seq_len + spec.virtual_positions(w.training)
    sequences = _objective(w).sequences_per_row
    tokens = seq * w.batch_size * sequences
    if sequences > 1:
        assumptions.append(f"{_objective(w).name}: {sequences} sequences per example in each step")
    per_layer = _activation_elements(method, shape, w, seq)
    if w.gradient_checkpointing:
        saved = tokens * (shape.layers * shape.hidden + per_layer)  # layer inputs + one layer recomputed
    else:
        saved = tokens * shape.layers * per_layer
    logits = min(tokens, LOGIT_TOKEN_CHUNK) * min(shape.vocab, LOGIT_VOCAB_CHUNK) * logit_bytes
    assumptions.append(
        f"logits and loss: {logit_bytes:g} bytes per vocabulary entry per position, in chunks of at most "
        f"{LOGIT_TOKEN_CHUNK} positions x {LOGIT_VOCAB_CHUNK} entries (TRL's fused LM head)"
    )
    return saved * BYTES[w.activation_dtype] + logits


def fit(method: str, shape: ModelShape, w: Workload, budget_gb: float) -> MemoryEstimate:
    """The estimate at the first setting that fits `budget_gb`, trying what every trainer does before giving up:
    the configured micro-batch, then halved micro-batches with more accumulation steps (the same effective batch),
    then the same with activation checkpointing. When nothing fits: the configured setting's estimate."""
    configured = estimate(method, shape, w)
    if configured.total_gb <= budget_gb:
        return configured
    effective = w.batch_size * w.gradient_accumulation_steps
    for checkpointing in dict.fromkeys((w.gradient_checkpointing, True)):
        batch = w.batch_size
        while batch >= 1:
            tried = replace(w, batch_size=batch, gradient_accumulation_steps=math.ceil(effective / batch),
                            gradient_checkpointing=checkpointing)  # fmt: skip
            found = estimate(method, shape, tried)
            if found.total_gb <= budget_gb:
                return found
            batch //= 2
    return configured


def estimate_all(
    shape: ModelShape, w: Workload, methods: tuple[str, ...] | None = None, budget_gb: float | None = None
) -> dict[str, MemoryEstimate]:
    """Every registered method (or the ones named), in registry order; with a budget, each at the first setting
    that fits it (see fit)."""
    if budget_gb is None:
        return {m: estimate(m, shape, w) for m in (methods or tuple(METHODS))}
    return {m: fit(m, shape, w, budget_gb) for m in (methods or tuple(METHODS))}


def workload_for(training, precision_dtype: str, seq_len: int, on_gpu: bool, devices: int = 1) -> Workload:
    """The workload Tunesmith's trainer actually runs: fp32 master weights and AdamW states, autocast, an adapter
    method's frozen base as training.frozen_weights says; spread over `devices` processes as training.distributed
    says."""
    accumulation = (
        math.ceil(training.effective_batch_size / (training.batch_size * devices))
        if training.effective_batch_size
        else training.gradient_accumulation_steps
    )
    packed = isinstance(training.tokens_per_batch, int)  # a plan's packed micro-batch: one row of that many tokens
    return replace(
        Workload(),
        seq_len=training.tokens_per_batch if packed else seq_len,
        batch_size=1 if packed else training.batch_size,
        gradient_accumulation_steps=accumulation,
        activation_dtype=precision_dtype,
        frozen_dtype=frozen_dtype(training, "cuda" if on_gpu else "cpu", precision_dtype),
        fused_mlp=liger_on(training, "cuda" if on_gpu else "cpu"),
        gradient_checkpointing=training.gradient_checkpointing,
        overhead_gb=CUDA_OVERHEAD_GB if on_gpu else 0.0,
        training=training,
        strategy=training.distributed.strategy,
        devices=devices,
    )
