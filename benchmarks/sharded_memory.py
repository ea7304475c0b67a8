"""Per-device training memory under DDP, ZeRO-2 and ZeRO-3/FSDP2: Tunesmith's estimator next to the ZeRO paper.

Usage: python benchmarks/sharded_memory.py [--devices 8]
The ZeRO paper (Rajbhandari et al., 2020) counts model states of mixed-precision Adam per parameter: 2 bytes of
16-bit weights, 2 of gradients and K = 12 of optimizer state (fp32 master weights, momentum, variance); per
device DDP holds (2 + 2 + K) x params, ZeRO-2 2 x params + (2 + K) x params / N, ZeRO-3 (2 + 2 + K) x params / N.
The estimator is run under the same accounting (16-bit weights, master weights) for Llama-2-7B and Llama-3-70B
shapes, full fine-tuning and LoRA (r 16 on the attention projections), and the table adds the total with
activations for one 2048-token sequence per device with activation checkpointing. Shapes only: no weights.
Writes benchmarks/results/sharded_memory.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
STRATEGIES = ("ddp", "deepspeed_zero2", "deepspeed_zero3", "fsdp2")


def paper_gb(params: int, trainable: int, strategy: str, devices: int) -> float:
    """The paper's per-device model states: 2 bytes of weights for every parameter, 2 + K = 14 bytes of gradients
    and optimizer states for each trainable one (all of them in full fine-tuning), divided as each stage shards."""
    weights, states = 2 * params, 14 * trainable
    if strategy != "ddp":
        states /= devices
    if strategy in ("deepspeed_zero3", "fsdp2"):
        weights /= devices
    return (weights + states) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=8)
    args = parser.parse_args()

    from transformers import LlamaConfig

    from tunesmith.config.schema import TrainingConfig
    from tunesmith.decision.memory import Workload, estimate
    from tunesmith.models.shape import model_shape

    shapes = {
        "Llama-2-7B": LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                  num_attention_heads=32, num_key_value_heads=32, vocab_size=32000),
        "Llama-3-70B": LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                                   num_attention_heads=64, num_key_value_heads=8, vocab_size=128256),
    }  # fmt: skip
    accounting = Workload(seq_len=2048, batch_size=1, weight_dtype="bfloat16", activation_dtype="bfloat16",
                          optimizer_state_dtype="float32", master_weights=True, gradient_checkpointing=True,
                          overhead_gb=1.0, training=TrainingConfig())  # fmt: skip
    rows = []
    for model, config in shapes.items():
        shape = model_shape(config)
        for method in ("full", "lora"):
            for strategy in STRATEGIES:
                e = estimate(method, shape, replace(accounting, strategy=strategy, devices=args.devices))
                rows.append(
                    {
                        "model": model, "params_b": round(shape.total_params / 1e9, 2), "method": method,
                        "strategy": strategy, "devices": args.devices,
                        "model_states_gb": round(e.model_states_gb(), 2),
                        "paper_gb": round(paper_gb(shape.total_params, e.trainable_params, strategy, args.devices), 2),
                        "total_per_device_gb": round(e.total_gb, 2),
                    }
                )  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sharded_memory.json").write_text(json.dumps(rows, indent=2))
    print(f"Per device, {args.devices} devices; model states = weights + gradients + optimizer states (GB = 1e9 B)")
    print("| model | method | strategy | estimator: model states | ZeRO paper formula | estimator: total |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} ({r['params_b']}B) | {r['method']} | {r['strategy']} | {r['model_states_gb']} | "
              f"{r['paper_gb']} | {r['total_per_device_gb']} |")  # fmt: skip


if __name__ == "__main__":
    main()
