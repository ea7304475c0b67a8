"""GPU training throughput at real model shapes: Tunesmith's training against plain and careful TRL.

Usage: python benchmarks/gpu_throughput.py [--shapes llama-3.2-1b,qwen2.5-7b] [--methods lora,qlora,full]
                                           [--workloads generation,classification] [--steps 30] [--warmup 5]
                                           [--ablations] [--tokenizer DIR] [--examples N]

Speed does not depend on the weights, so each shape is a randomly initialised model with the exact config of
Llama-3.2-1B or Qwen2.5-7B (saved once, with SmolLM2's tokenizer and chat template for the text). Two workloads,
from ../shared/data when present (else the bundled tickets and replay instructions):

- generation: alpaca_5k and dolly_open_qa instructions with their answers, packed into 2,048-token rows, four rows
  (8,192 tokens) a micro-batch;
- classification: banking77 queries answered with their label (about 40 tokens each), 4,096 tokens a micro-batch.

Every measurement runs in a fresh process, one after another on one GPU:

- Tunesmith's own training (tunesmith.training.sft.train_files) at its defaults on a GPU (FlashAttention or flex
  attention, fused AdamW, Liger where installed, the frozen base in bf16, torch.compile, metrics read at logging
  steps only), with training.tokens_per_batch the workload's micro-batch and max_seq_length its row length;
- plain TRL: SFTTrainer with SFTConfig defaults (bf16, gradient checkpointing on, padded batches of 8, max_length
  1024) and the same LoRA adapter (Tunesmith's default: every linear layer, r 16) on the same tokenized examples;
- careful TRL, as a user who read TRL's docs would set it: packing (best-fit decreasing) into the workload's rows
  with padding_free, the attention kernel Tunesmith's fast path picks on that machine, no checkpointing, the same
  micro-batch in tokens.

Tokens/s counts real (non-padding) tokens per second over the steps after --warmup (compilation and allocator
warm-up excluded), timed identically in every run. MFU = tokens/s x FLOPs per token / the GPU's dense bf16 peak,
counted as the public anchors count it: FLOPs per token = (2N + 2 L H d s) x 3 for full fine-tuning (forward,
input gradients, weight gradients: 6N) and x 2 for a frozen base with adapters (no weight gradients: 4N), where N
is the linear weights (LM head included), L layers, H heads of width d, and s the token-weighted mean length of
the example a token attends within (causal attention: half of an s x s score matrix, for scores and values, in
each pass); the adapters' own few FLOPs are not counted. Peak memory is torch.cuda.max_memory_allocated, next to
Tunesmith's estimate for the same method and workload without its CUDA context allowance. --ablations adds
Tunesmith LoRA runs with one switch at a time set back to the plain setting. Without CUDA it runs a tiny shape on
the CPU (the plumbing test). Writes benchmarks/results/gpu_throughput.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared" / "data"

# The published configs (config.json of meta-llama/Llama-3.2-1B and Qwen/Qwen2.5-7B-Instruct).
SHAPES = {
    "llama-3.2-1b": dict(
        model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
        max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    ),
    "qwen2.5-7b": dict(
        model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
    ),
    "tiny": dict(
        model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=49152, max_position_embeddings=2048, tie_word_embeddings=True,
    ),
}  # fmt: skip
# Dense bf16 peak, FLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_BF16 = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
             "A10G": 70e12, "RTX 4090": 165e12}  # fmt: skip
SYSTEM = "You are a helpful assistant."
PLAIN_TRL_BATCH, PLAIN_TRL_MAX_LENGTH = 8, 1024  # SFTConfig's defaults


@dataclass(frozen=True)
class Workload:
    row_length: int  # packed rows (and the longest example) in tokens
    tokens_per_batch: int  # tokens a micro-batch holds


WORKLOADS = {"generation": Workload(2048, 8192), "classification": Workload(256, 4096)}


def _read(path: Path, n: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return random.Random(0).sample(rows, min(n, len(rows)))


def _instruction_chat(r: dict) -> list[dict[str, str]]:
    prompt = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": r["output"]}]


def workload_chats(workload: str, n: int) -> list[list[dict[str, str]]]:
    """The workload's conversations: instructions with answers, or short queries answered with a label."""
    if workload == "generation":
        if (SHARED / "alpaca_5k").is_dir() and (SHARED / "dolly_open_qa").is_dir():
            rows = _read(SHARED / "alpaca_5k" / "train.jsonl", n // 2) + _read(
                SHARED / "dolly_open_qa" / "train.jsonl", n - n // 2
            )
        else:
            rows = _read(REPO / "data" / "general_replay.jsonl", n)
        return [_instruction_chat(r) for r in rows]
    source = SHARED / "banking77" / "train.jsonl"
    rows = _read(source if source.is_file() else REPO / "data" / "tickets.jsonl", n)
    return [[{"role": "user", "content": r["text"]}, {"role": "assistant", "content": r["label"]}] for r in rows]


def build_model(shape: str, work: Path, tokenizer_dir: str | None) -> Path:
    """A randomly initialised model of the shape, saved in bf16 with SmolLM2's tokenizer (or `tokenizer_dir`'s)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunesmith.models.load import load_tokenizer
    from tunesmith.models.resolve import resolve_model

    out = work / f"model-{shape}"
    if (out / "config.json").is_file():
        return out
    settings = dict(SHAPES[shape])
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    config.dtype = "bfloat16"
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # initialising 7B on a CPU takes minutes
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(str(out))
    del model
    torch.cuda.empty_cache()  # the measuring processes need the whole GPU (a no-op without CUDA)
    source = tokenizer_dir or resolve_model("smollm2-135m-instruct", Path("~/.cache/tunesmith/models"))
    load_tokenizer(source).save_pretrained(str(out))
    return out


def write_data(chats: list[list[dict[str, str]]], folder: Path) -> tuple[Path, Path]:
    from tunesmith.curation.records import make_example, write_examples

    folder.mkdir(parents=True, exist_ok=True)
    examples = [make_example(c, f"mix:{i}") for i, c in enumerate(chats)]
    return write_examples(examples, folder / "train.jsonl"), write_examples([], folder / "empty.jsonl")


class StepClock:
    """Wraps Trainer.training_step: the end time and the real tokens of each micro-step, on a synchronised GPU."""

    def __init__(self):
        self.marks: list[tuple[float, int]] = []

    def install(self) -> None:
        import torch
        from transformers import Trainer

        original = Trainer.training_step
        clock = self

        def timed(trainer, model, inputs, *args, **kwargs):
            loss = original(trainer, model, inputs, *args, **kwargs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            mask = inputs.get("attention_mask")
            tokens = int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
            clock.marks.append((time.perf_counter(), tokens))
            return loss

        Trainer.training_step = timed

    def tokens_per_s(self, warmup: int) -> float:
        marks = self.marks[warmup:] if len(self.marks) > warmup + 1 else self.marks
        return sum(t for _, t in marks[1:]) / max(marks[-1][0] - marks[0][0], 1e-9)


def matmul_flops_per_token(model_dir: Path, method: str, lengths: list[int]) -> float:
    """(2N + 2 L H d s) x 3 (full) or x 2 (frozen base with adapters): see the module's docstring."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(model_dir))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    # A token of an example of length n attends over n/2 positions on average: the token-weighted mean length.
    seq_len = sum(n * n for n in lengths) / max(sum(lengths), 1)
    attention = 2 * seq_len * config.num_hidden_layers * config.num_attention_heads * head_dim
    return (2 * linear + attention) * (3 if method == "full" else 2)


def peak_flops() -> tuple[str, float | None]:
    import torch

    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name(0)
    return name, next((v for k, v in PEAK_BF16.items() if k in name), None)


def estimate_gb(model_dir: Path, result: dict, longest: int, on_gpu: bool) -> float:
    """Tunesmith's memory estimate for the run as it ran (micro-batch, checkpointing, frozen base dtype), without
    the CUDA context allowance, which max_memory_allocated does not count."""
    from tunesmith.config.schema import TrainingConfig
    from tunesmith.decision.memory import estimate, workload_for
    from tunesmith.models.shape import model_shape

    packed = result.get("tokens_per_batch")
    training = TrainingConfig(
        batch_size=result["micro_batch"], gradient_checkpointing=result["gradient_checkpointing"],
        liger=result["liger"], tokens_per_batch=packed or "off",
    )  # fmt: skip
    e = estimate(result["method"], model_shape(str(model_dir)), workload_for(training, result["precision"], longest,
                                                                             on_gpu))  # fmt: skip
    return e.total_gb - e.overhead_gb


def _train_rows(model_dir: Path, train: Path, max_length: int) -> list[dict]:
    from tunesmith.curation.records import read_examples
    from tunesmith.models.load import load_tokenizer
    from tunesmith.prompts import full_messages
    from tunesmith.training.tokenize import tokenize_conversation

    tokenizer = load_tokenizer(str(model_dir))
    rows = read_examples(train)
    return [tokenize_conversation(tokenizer, full_messages(e, SYSTEM), "assistant", max_length) for e in rows]


# One switch at a time back to the plain setting, to see what each contributes (--ablations).
ABLATIONS = {"packing off": {"tokens_per_batch": "off"}, "compile off": {"compile": False},
             "liger off": {"liger": False}, "fused AdamW off": {"fused_optimizer": False},
             "fp32 frozen base": {"frozen_weights": "float32"},
             "checkpointing on": {"gradient_checkpointing": True}}  # fmt: skip
SWITCHES = ("attention", "padding_free", "fused_optimizer", "liger", "frozen_dtype", "compile", "tokens_per_batch")


def tunesmith_worker(model_dir: Path, folder: Path, method: str, steps: int, workload: Workload,
                     ablation: str | None = None) -> dict:  # fmt: skip
    """Tunesmith's train_files at its defaults, micro-batches of the workload's tokens, one micro-batch a step."""
    from tunesmith.config.schema import TrainingConfig
    from tunesmith.models.hardware import choose_precision
    from tunesmith.training.sft import train_files

    precision = choose_precision()
    lengths = [len(r["input_ids"]) for r in _train_rows(model_dir, folder / "train.jsonl", workload.row_length)]
    examples_per_batch = max(1, round(workload.tokens_per_batch * len(lengths) / sum(lengths)))
    settings = {"batch_size": examples_per_batch, "tokens_per_batch": workload.tokens_per_batch}
    settings |= ABLATIONS.get(ablation or "", {})
    if settings["tokens_per_batch"] == "off":
        settings["batch_size"] = PLAIN_TRL_BATCH
    config = TrainingConfig(max_steps=steps, max_seq_length=workload.row_length, logging_steps=10,
                            save_steps=10 * steps, early_stopping_patience=None, **settings)  # fmt: skip
    clock = StepClock()
    clock.install()
    out = Path(tempfile.mkdtemp(prefix=f"gpu-{method}-"))
    trained = train_files(str(model_dir), str(folder / "train.jsonl"), str(folder / "empty.jsonl"), SYSTEM, config,
                          method, precision, out)  # fmt: skip
    hp = trained.hyperparameters
    name = f"tunesmith {method}" + (f" ({ablation})" if ablation else "")
    return {"run": name, "method": method, "precision": precision.dtype, "clock": clock.marks,
            "peak_gpu_mb": trained.metrics.get("peak_gpu_mb"), "optimizer": hp["optimizer"],
            "micro_batch": config.batch_size, "gradient_accumulation_steps": hp["gradient_accumulation_steps"],
            "gradient_checkpointing": config.gradient_checkpointing,
            **{k: hp.get(k) for k in SWITCHES}}  # fmt: skip


def trl_worker(model_dir: Path, folder: Path, steps: int, workload: Workload, careful: bool) -> dict:
    """The script a user would write: SFTTrainer with the same LoRA adapter and tokenized examples; SFTConfig's
    defaults (plain), or packed rows with padding_free, the kernel it needs and no checkpointing (careful)."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from tunesmith.config.schema import TrainingConfig
    from tunesmith.models.hardware import choose_precision
    from tunesmith.training.fast_path import resolve
    from tunesmith.training.methods.lora import peft_config

    cuda = torch.cuda.is_available()
    clock = StepClock()
    clock.install()
    out = Path(tempfile.mkdtemp(prefix="gpu-trl-"))
    common = dict(output_dir=str(out), max_steps=steps, report_to="none", save_strategy="no", use_cpu=not cuda,
                  bf16=cuda)  # fmt: skip
    attention = "sdpa"
    if careful:
        fast = resolve(TrainingConfig(tokens_per_batch=workload.tokens_per_batch), choose_precision())
        attention = fast.attention
        rows = workload.tokens_per_batch // workload.row_length
        model_init = {"attn_implementation": attention, "dtype": "bfloat16" if cuda else "float32"}
        args = SFTConfig(**common, packing=True, packing_strategy="bfd", padding_free=True,
                         max_length=workload.row_length, per_device_train_batch_size=rows,
                         gradient_checkpointing=False, model_init_kwargs=model_init)  # fmt: skip
    else:
        args = SFTConfig(**common)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    dataset = Dataset.from_list(_train_rows(model_dir, folder / "train.jsonl", workload.row_length))
    trainer = SFTTrainer(model=str(model_dir), args=args, train_dataset=dataset,
                         peft_config=peft_config(TrainingConfig()))  # fmt: skip
    trainer.train()
    frozen = next(str(p.dtype).removeprefix("torch.") for p in trainer.model.parameters() if not p.requires_grad)
    optimizer = str(getattr(args.optim, "value", args.optim))
    return {"run": f"{'careful' if careful else 'plain'} TRL lora", "method": "lora",
            "precision": "bfloat16" if args.bf16 else "float32", "clock": clock.marks,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "optimizer": optimizer, "micro_batch": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "gradient_checkpointing": args.gradient_checkpointing, "attention": attention, "padding_free": careful,
            "fused_optimizer": "fused" in optimizer, "liger": False, "frozen_dtype": frozen, "compile": False,
            "tokens_per_batch": workload.tokens_per_batch if careful else None}  # fmt: skip


def _spawn(args: list[str], timeout_s: float | None = None) -> dict:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    env = os.environ | {"TOKENIZERS_PARALLELISM": "false"}
    try:
        done = subprocess.run([sys.executable, __file__, *args, "--out", str(out)], env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"stopped at the time budget ({timeout_s:.0f} s left when it started)"}
    if done.returncode != 0:
        return {"error": f"exit code {done.returncode}"}
    return json.loads(out.read_text())


def summarise(result: dict, shape: str, workload: str, model_dir: Path, warmup: int, lengths: list[int]) -> dict:
    import torch

    clock = StepClock()
    clock.marks = [tuple(m) for m in result.pop("clock")]
    tps = clock.tokens_per_s(warmup)
    gpu, peak = peak_flops()
    flops = matmul_flops_per_token(model_dir, result["method"], lengths)
    on_gpu = torch.cuda.is_available()
    # Peak memory comes with the longest micro-batch: the estimate at the longest example, as the plan sizes it.
    longest = min(max(lengths), PLAIN_TRL_MAX_LENGTH) if "TRL" in result["run"] else max(lengths)
    est = estimate_gb(model_dir, result, longest, on_gpu)
    measured_gb = result["peak_gpu_mb"] * 2**20 / 1e9 if result.get("peak_gpu_mb") else None
    return {
        "shape": shape, "workload": workload, **result, "gpu": gpu,
        "steps_timed": max(len(clock.marks) - warmup - 1, 0), "tokens_per_s": round(tps, 1),
        "flops_per_token": round(flops), "mfu": round(tps * flops / peak, 4) if peak else None,
        "peak_gpu_gb": round(measured_gb, 2) if measured_gb else None, "estimate_gb": round(est, 2),
        "peak_vs_estimate": round(measured_gb / est - 1, 3) if measured_gb else None,
    }  # fmt: skip


def _lengths_summary(lengths: list[int]) -> dict:
    ordered = sorted(lengths)
    return {"examples": len(ordered), "mean": round(sum(ordered) / len(ordered), 1),
            "median": ordered[len(ordered) // 2], "max": ordered[-1]}  # fmt: skip


def save(rows: list[dict], mixes: dict[str, list[int]], args) -> dict:
    for r in rows:
        same = [o for o in rows if (o["shape"], o.get("workload")) == (r["shape"], r.get("workload"))]
        for name, key in (("plain TRL lora", "speedup_vs_plain_trl"), ("careful TRL lora", "speedup_vs_careful_trl")):
            other = next((o for o in same if o.get("run") == name and "tokens_per_s" in o), None)
            if r.get("run") == "tunesmith lora" and other and "tokens_per_s" in r:
                r[key] = round(r["tokens_per_s"] / other["tokens_per_s"], 2)
    report = {"workloads": {name: {**asdict(WORKLOADS[name]), "tokens_per_example": _lengths_summary(lengths)}
                            for name, lengths in mixes.items()},
              "steps": args.steps, "warmup": args.warmup,
              "mfu_formula": "tokens/s x (2N + 2 L H d s) x (3 full | 2 frozen base + adapters) / dense bf16 peak",
              "goals": {"lora_speedup_vs_plain_trl": 1.5, "lora_speedup_vs_careful_trl": 1.2, "lora_1b_mfu": 0.25,
                        "lora_7b_mfu": 0.40, "peak_within_estimate": 0.15},
              "rows": rows}  # fmt: skip
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(report, indent=2))
    return report


def print_table(rows: list[dict]) -> None:
    header = (f"{'shape':<14}{'workload':<16}{'run':<34}{'tokens/s':>10}{'MFU':>7}{'peak GB':>9}{'est. GB':>9}"
              f"{'vs est.':>9}  speed-ups / switches")  # fmt: skip
    print("\n" + header)
    for r in rows:
        lead = f"{r['shape']:<14}{r.get('workload', '-'):<16}{r['run']:<34}"
        if "tokens_per_s" not in r:
            print(f"{lead}  {r.get('skipped') or r.get('error')}")
            continue
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        peak = f"{r['peak_gpu_gb']:.2f}" if r["peak_gpu_gb"] else "-"
        versus = f"{r['peak_vs_estimate']:+.0%}" if r["peak_vs_estimate"] is not None else "-"
        speedups = " ".join(f"x{r[k]} vs {k.removeprefix('speedup_vs_').replace('_trl', ' TRL')}"
                            for k in ("speedup_vs_plain_trl", "speedup_vs_careful_trl") if k in r)  # fmt: skip
        switches = ", ".join(f"{k}={r.get(k)}" for k in (*SWITCHES, "gradient_checkpointing"))
        print(f"{lead}{r['tokens_per_s']:>10}{mfu:>7}{peak:>9}{r['estimate_gb']:>9}{versus:>9}  {speedups}  {switches}")


def _runs(method: str, shape: str, workload: str, args, first: tuple[str, str]) -> list[list[str]]:
    runs = [[method]]
    if method == "lora":
        runs += [["plain-trl"], ["careful-trl"]]
        if args.ablations and (shape, workload) == first:
            runs += [[method, "--ablation", name] for name in ABLATIONS]
    return runs


def measure(args, work: Path, cuda: bool) -> list[dict]:
    import importlib.util

    deadline = time.monotonic() + args.budget_s if args.budget_s else None

    shapes = (args.shapes or ("llama-3.2-1b,qwen2.5-7b" if cuda else "tiny")).split(",")
    workloads = args.workloads.split(",")
    rows: list[dict] = []
    mixes: dict[str, list[int]] = {}
    for shape in shapes:
        model_dir = build_model(shape, work, args.tokenizer)
        for workload in workloads:
            folder = work / workload
            write_data(workload_chats(workload, args.examples), folder)
            lengths = [len(r["input_ids"]) for r in _train_rows(model_dir, folder / "train.jsonl",
                                                                 WORKLOADS[workload].row_length)]  # fmt: skip
            mixes[workload] = lengths
            for method in args.methods.split(","):
                if method == "full" and shape == "qwen2.5-7b":
                    continue  # 7B full fine-tuning needs ~110 GB: a sharded run, not one GPU
                if method == "qlora" and not (cuda and importlib.util.find_spec("bitsandbytes")):
                    rows.append({"shape": shape, "workload": workload, "run": "tunesmith qlora",
                                 "skipped": "needs CUDA and bitsandbytes"})  # fmt: skip
                    continue
                for worker, *extra in _runs(method, shape, workload, args, (shapes[0], workloads[0])):
                    common = ["--model", str(model_dir), "--work", str(work), "--workload", workload,
                              "--steps", str(args.steps), *extra]  # fmt: skip
                    left = deadline - time.monotonic() if deadline else None
                    if left is not None and left < 20:
                        rows.append({"shape": shape, "workload": workload, "run": f"{worker} {method}",
                                     "skipped": "the time budget (--budget-s) ran out"})  # fmt: skip
                        continue
                    result = _spawn(["--worker", worker, *common], left)
                    if "error" in result:
                        rows.append({"shape": shape, "workload": workload, "run": f"{worker} {method}", **result})
                        continue
                    rows.append(summarise(result, shape, workload, model_dir, args.warmup, lengths))
                    print(json.dumps(rows[-1]), flush=True)
                    save(rows, mixes, args)  # a run cut short still leaves what it measured
    save(rows, mixes, args)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=None, help="default: llama-3.2-1b,qwen2.5-7b on a GPU, tiny on a CPU")
    parser.add_argument("--methods", default="lora,qlora,full")
    parser.add_argument("--workloads", default="generation,classification")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--budget-s", type=float, default=None, help="stop starting runs after this many seconds")
    parser.add_argument("--work", default=None, help="where models and data are kept between runs")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer folder (default: SmolLM2's, embedded)")
    parser.add_argument("--results", default=str(RESULTS / "gpu_throughput.json"))
    parser.add_argument(
        "--ablations", action="store_true", help="LoRA on the first shape and workload, each switch off"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--ablation", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-throughput-"))
    if args.worker:
        model, folder, workload = Path(args.model), work / args.workload, WORKLOADS[args.workload]
        result = (
            trl_worker(model, folder, args.steps, workload, careful=args.worker == "careful-trl")
            if args.worker in ("plain-trl", "careful-trl")
            else tunesmith_worker(model, folder, args.worker, args.steps, workload, args.ablation)
        )
        Path(args.out).write_text(json.dumps(result))
        return 0

    import torch

    work.mkdir(parents=True, exist_ok=True)
    rows = measure(args, work, torch.cuda.is_available())
    print_table(rows)
    print(f"\nGPU: {rows[0].get('gpu', 'cpu') if rows else '-'}; written: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
