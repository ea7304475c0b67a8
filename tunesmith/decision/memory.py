"""Training-memory estimates per method: weights, gradients, optimizer states, activations, overhead.

Shapes come from the model's own config (the model is built on PyTorch's meta device, so no weights are
loaded and any architecture works). Every estimate carries the assumptions it was computed under.
Units: GB = 1e9 bytes, as in the published figures this reproduces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "int8": 1.0}
GB = 1e9
CUDA_OVERHEAD_GB = 1.0  # CUDA context, cuBLAS workspaces and allocator slack
# Per vocabulary entry per token: logits in the model dtype, their fp32 copy and shifted copy for the loss,
# the saved log-softmax, the trainer's entropy/accuracy temporaries and the gradients flowing back.
LOGIT_BYTES_BEYOND_MODEL_DTYPE = 28
NF4_BYTES = 0.5
# bitsandbytes keeps one absmax per 64 weights: fp32 (4 bytes) plainly, or 8-bit with a second fp32
# constant per 256 blocks when double-quantized (about 0.127 bits per weight).
QUANT_CONSTANT_BYTES = {False: 4 / 64, True: 1 / 64 + 4 / (64 * 256)}
ESTIMATED_METHODS = ("full", "lora", "dora", "qlora", "adapter", "prefix", "prompt", "ia3", "spectrum")


@dataclass(frozen=True)
class ModelShape:
    total_params: int
    layer_linear_params: int  # nn.Linear weights inside decoder blocks: what QLoRA quantizes
    largest_linear: int
    linear_kinds: dict[str, tuple[int, int, int]]  # kind (q_proj, ...) -> (in_features, out_features, count)
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_dim: int
    vocab: int


def model_shape(config_or_path: Any, trust_remote_code: bool = False) -> ModelShape:
    """Parameter counts and dimensions of a causal LM, from its config alone."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = config_or_path
    if isinstance(config_or_path, str):
        config = AutoConfig.from_pretrained(config_or_path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    kinds: dict[str, tuple[int, int, int]] = {}
    layer_linear = largest = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ".layers." in name:
            kind = name.rsplit(".", 1)[-1]
            _, _, count = kinds.get(kind, (0, 0, 0))
            kinds[kind] = (module.in_features, module.out_features, count + 1)
            layer_linear += module.weight.numel()
            largest = max(largest, module.weight.numel())
    hidden = config.hidden_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return ModelShape(
        total_params=sum(p.numel() for p in model.parameters()),
        layer_linear_params=layer_linear,
        largest_linear=largest,
        linear_kinds=kinds,
        hidden=hidden,
        layers=config.num_hidden_layers,
        intermediate=getattr(config, "intermediate_size", 4 * hidden),
        heads=heads,
        kv_dim=(getattr(config, "num_key_value_heads", None) or heads) * head_dim,
        vocab=config.vocab_size,
    )


@dataclass(frozen=True)
class Workload:
    """How training runs; the defaults describe Tunesmith's own CPU runs (fp32 master weights, AdamW)."""

    seq_len: int = 256
    batch_size: int = 8
    weight_dtype: str = "float32"
    activation_dtype: str = "float32"
    optimizer: Literal["adamw", "adamw_8bit", "sgd"] = "adamw"
    optimizer_state_dtype: str = "float32"
    gradient_checkpointing: bool = False
    attention: Literal["sdpa", "eager"] = "sdpa"
    overhead_gb: float = 0.0  # CUDA context and allocator reserve; 0 on a CPU (RSS above the idle process)
    lora_r: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    qlora_double_quant: bool = True
    adapter_bottleneck: int = 64
    virtual_tokens: int = 16
    ia3_targets: tuple[str, ...] = ("k_proj", "v_proj", "down_proj")
    ia3_feedforward: tuple[str, ...] = ("down_proj",)
    spectrum_fraction: float = 0.25


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _targets(shape: ModelShape, targets: tuple[str, ...]) -> list[tuple[int, int, int]]:
    if targets == ("all-linear",):
        return list(shape.linear_kinds.values())
    return [shape.linear_kinds[t] for t in targets if t in shape.linear_kinds]


def trainable_params(method: str, shape: ModelShape, w: Workload) -> int:
    """What the method trains: matches PEFT's counts for LoRA, DoRA, IA3, prefix and prompt tuning."""
    if method == "full":
        return shape.total_params
    if method in ("lora", "qlora", "dora"):
        n = sum(count * w.lora_r * (fan_in + fan_out) for fan_in, fan_out, count in _targets(shape, w.lora_targets))
        if method == "dora":
            n += sum(count * fan_out for _, fan_out, count in _targets(shape, w.lora_targets))
        return n
    if method == "adapter":
        m, h = w.adapter_bottleneck, shape.hidden
        return shape.layers * 2 * (h * m + m + m * h + h)
    if method == "prefix":
        return w.virtual_tokens * shape.layers * 2 * shape.kv_dim
    if method == "prompt":
        return w.virtual_tokens * shape.hidden
    if method == "ia3":
        return sum(
            count * (fan_in if kind in w.ia3_feedforward else fan_out)
            for kind, (fan_in, fan_out, count) in shape.linear_kinds.items()
            if kind in w.ia3_targets
        )
    if method == "spectrum":
        return round(w.spectrum_fraction * shape.layer_linear_params)
    raise ValueError(f"no memory model for method {method!r}")


def _activation_elements(method: str, shape: ModelShape, w: Workload, seq: int) -> float:
    """Saved activations per token per layer, in elements, for a Llama-style block (RMSNorm, SwiGLU).

    2 norm inputs, 2 norm outputs, q/k/v, attention output, gate, up, SiLU output and their product:
    6h + 2kv + 4f. A frozen base saves about as much (measured on CPU: PyTorch keeps the inputs of frozen
    linear layers too), plus each method's own inputs.
    """
    h, kv, f = shape.hidden, shape.kv_dim, shape.intermediate
    elements = 6 * h + 2 * kv + 4 * f
    if method in ("lora", "qlora", "dora"):
        targets = _targets(shape, w.lora_targets)
        per_layer = [(fan_in, fan_out, count / shape.layers) for fan_in, fan_out, count in targets]
        elements += sum(share * (fan_in + w.lora_r) for fan_in, _, share in per_layer)
        if method == "dora":
            elements += sum(share * fan_out for _, fan_out, share in per_layer)
    elif method == "adapter":
        elements += 2 * (h + 2 * w.adapter_bottleneck)
    elif method == "ia3":
        elements += sum(
            (fan_in if kind in w.ia3_feedforward else fan_out) * count / shape.layers
            for kind, (fan_in, fan_out, count) in shape.linear_kinds.items()
            if kind in w.ia3_targets
        )
    if w.attention == "eager":
        elements += shape.heads * (seq + (w.virtual_tokens if method == "prefix" else 0))
    return elements


def estimate(method: str, shape: ModelShape, w: Workload) -> MemoryEstimate:
    """Peak training memory for one method, with each component and the assumptions behind it."""
    weight_bytes, act_bytes = BYTES[w.weight_dtype], BYTES[w.activation_dtype]
    trainable = trainable_params(method, shape, w)
    added = trainable if method in ("lora", "qlora", "dora", "adapter", "prefix", "prompt", "ia3") else 0
    assumptions = [
        f"sequence length {w.seq_len}, batch size {w.batch_size}",
        f"weights in {w.weight_dtype}, activations in {w.activation_dtype}",
        f"optimizer {w.optimizer}" + (f" with {w.optimizer_state_dtype} states" if w.optimizer != "sgd" else ""),
        f"attention {w.attention}"
        + (" (scores kept for backward)" if w.attention == "eager" else " (no score matrix kept)"),
        "gradient checkpointing " + ("on" if w.gradient_checkpointing else "off"),
        f"runtime overhead {w.overhead_gb:g} GB",
    ]
    logit_bytes = act_bytes + LOGIT_BYTES_BEYOND_MODEL_DTYPE
    if method == "qlora":
        quantized = shape.layer_linear_params
        per_weight = NF4_BYTES + QUANT_CONSTANT_BYTES[w.qlora_double_quant]
        # prepare_model_for_kbit_training keeps everything not quantized (embeddings, head, norms) in fp32.
        weights = quantized * per_weight + (shape.total_params - quantized) * BYTES["float32"]
        weights += shape.largest_linear * act_bytes  # one matrix dequantized at a time for the matmul
        weights += added * weight_bytes
        logit_bytes = BYTES["float32"] + LOGIT_BYTES_BEYOND_MODEL_DTYPE
        assumptions.append(
            f"decoder linear layers in 4-bit NF4 ({per_weight * 8:.3f} bits per weight with "
            f"{'double ' if w.qlora_double_quant else ''}quantization constants), the rest in float32"
        )
    else:
        weights = (shape.total_params + added) * weight_bytes
        if act_bytes < weight_bytes:
            weights += shape.total_params * act_bytes  # autocast keeps a low-precision copy of each weight
            assumptions.append(f"autocast caches a {w.activation_dtype} copy of the weights during each step")
    if method in ("lora", "qlora", "dora"):
        assumptions.append(f"LoRA rank {w.lora_r} on {', '.join(w.lora_targets)}")
    gradients = trainable * weight_bytes
    state_bytes = {"adamw": 2 * BYTES[w.optimizer_state_dtype], "adamw_8bit": 2.0, "sgd": 0.0}[w.optimizer]
    optimizer = trainable * state_bytes

    seq = w.seq_len + (w.virtual_tokens if method == "prompt" else 0)
    tokens = seq * w.batch_size
    per_layer = _activation_elements(method, shape, w, seq)
    if w.gradient_checkpointing:
        saved = tokens * (shape.layers * shape.hidden + per_layer)  # layer inputs + one layer recomputed
    else:
        saved = tokens * shape.layers * per_layer
    logits = tokens * shape.vocab * logit_bytes
    activations = saved * act_bytes + logits
    assumptions.append(f"logits and loss: {logit_bytes:g} bytes per vocabulary entry per position")
    total = weights + gradients + optimizer + activations + w.overhead_gb * GB
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
    )


def estimate_all(
    shape: ModelShape, w: Workload, methods: tuple[str, ...] = ESTIMATED_METHODS
) -> dict[str, MemoryEstimate]:
    return {m: estimate(m, shape, w) for m in methods}


def workload_for(training, precision_dtype: str, seq_len: int, on_gpu: bool) -> Workload:
    """The workload Tunesmith's trainer actually runs: fp32 master weights and AdamW states, autocast."""
    targets = training.lora.target_modules
    return replace(
        Workload(),
        seq_len=seq_len,
        batch_size=training.batch_size,
        activation_dtype=precision_dtype,
        gradient_checkpointing=training.gradient_checkpointing,
        overhead_gb=CUDA_OVERHEAD_GB if on_gpu else 0.0,
        lora_r=training.lora.r,
        lora_targets=("all-linear",) if targets == "all-linear" else tuple(targets),
        qlora_double_quant=training.qlora.double_quant,
        adapter_bottleneck=training.adapter.bottleneck,
        virtual_tokens=training.prefix.num_virtual_tokens,
        ia3_targets=tuple(training.ia3.target_modules),
        ia3_feedforward=tuple(training.ia3.feedforward_modules),
        spectrum_fraction=training.spectrum.fraction,
    )
