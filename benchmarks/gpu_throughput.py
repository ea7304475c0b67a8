"""GPU training throughput at real model shapes: Tunesmith's training against plain TRL defaults.

Usage: python benchmarks/gpu_throughput.py [--shapes llama-3.2-1b,qwen2.5-7b] [--methods lora,qlora,full]
                                           [--steps 30] [--warmup 5] [--batch-size 8] [--ablations]
                                           [--tokenizer DIR] [--mix chats.jsonl]

Speed does not depend on the weights, so each shape is a randomly initialised model with the exact config of
Llama-3.2-1B or Qwen2.5-7B (saved once, with SmolLM2's tokenizer and chat template for the text). The examples
are a realistic length mix: half short classification queries answered with a label (banking77), half
instructions with long answers (alpaca_5k), from ../shared/data when present, else the bundled tickets and
replay instructions. Every measurement runs in a fresh process, one after another on one GPU:

- Tunesmith's own training (tunesmith.training.sft.train_model, every setting at its default: on a GPU the
  fast path of training.attention / padding_free / fused_optimizer / liger / frozen_weights);
- for LoRA, the script a user would otherwise write: TRL's SFTTrainer with SFTConfig defaults (bf16, gradient
  checkpointing on, padded batches) and the same LoRA adapter (Tunesmith's default: every linear layer, r 16),
  on the same tokenized examples.

Tokens/s counts real (non-padding) tokens per second over the steps after --warmup (kernel compilation and
allocator warm-up excluded), timed identically in both. MFU divides the model FLOPs per token (matmuls:
forward 2 x the linear weights plus attention; backward twice that for full fine-tuning, once for a frozen
base, whose weight gradients are never computed) by the GPU's dense bf16 peak. Peak memory is
torch.cuda.max_memory_allocated, next to Tunesmith's estimate for the same method and workload without its
CUDA context allowance. --ablations adds Tunesmith LoRA runs with one switch at a time set back to the plain
setting. Without CUDA it runs a tiny shape on the CPU (the plumbing test).
Writes benchmarks/results/gpu_throughput.json and prints a table.
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
MAX_LENGTH = 1024
SYSTEM = "You are a helpful assistant."


def _read(path: Path, n: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return random.Random(0).sample(rows, min(n, len(rows)))


def length_mix(n: int = 512) -> list[list[dict[str, str]]]:
    """Conversations: half short queries answered with a label, half instructions with long answers."""
    if (SHARED / "banking77").is_dir() and (SHARED / "alpaca_5k").is_dir():
        short, long = (
            _read(SHARED / "banking77" / "train.jsonl", n // 2),
            _read(SHARED / "alpaca_5k" / "train.jsonl", n),
        )
    else:
        short, long = _read(REPO / "data" / "tickets.jsonl", n // 2), _read(REPO / "data" / "general_replay.jsonl", n)
    chats = [[{"role": "user", "content": r["text"]}, {"role": "assistant", "content": r["label"]}] for r in short]
    long = [r for r in long if len(r["output"]) > 200] or long
    for r in (long * n)[: n - len(chats)]:
        prompt = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
        chats.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": r["output"]}])
    return chats


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


def write_data(chats: list[list[dict[str, str]]], work: Path) -> tuple[Path, Path]:
    from tunesmith.curation.records import make_example, write_examples

    examples = [make_example(c, f"mix:{i}") for i, c in enumerate(chats)]
    return write_examples(examples, work / "train.jsonl"), write_examples([], work / "empty.jsonl")


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


def matmul_flops_per_token(model_dir: Path, method: str, seq_len: float) -> float:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(model_dir))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    # Causal attention: scores and weighted values, 2 x 2 x (seq/2) x heads x head_dim per token and layer.
    attention = 2 * seq_len * config.num_hidden_layers * config.num_attention_heads * head_dim
    forward = 2 * linear + attention
    return forward * (3 if method == "full" else 2)


def peak_flops() -> tuple[str, float | None]:
    import torch

    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name(0)
    return name, next((v for k, v in PEAK_BF16.items() if k in name), None)


def estimate_gb(model_dir: Path, result: dict, batch_size: int, seq_len: int, on_gpu: bool) -> float:
    """Tunesmith's memory estimate for the run as it ran (checkpointing, frozen base dtype), without the CUDA
    context allowance, which max_memory_allocated does not count."""
    from tunesmith.config.schema import TrainingConfig
    from tunesmith.decision.memory import estimate, workload_for
    from tunesmith.models.shape import model_shape

    training = TrainingConfig(
        batch_size=batch_size, gradient_checkpointing=result["gradient_checkpointing"], liger=result["liger"]
    )
    w = workload_for(training, result["precision"], seq_len, on_gpu)
    e = estimate(result["method"], model_shape(str(model_dir)), w)
    return e.total_gb - e.overhead_gb


def _train_rows(model_dir: Path, train: Path) -> list[dict]:
    from tunesmith.curation.records import read_examples
    from tunesmith.models.load import load_tokenizer
    from tunesmith.prompts import full_messages
    from tunesmith.training.tokenize import tokenize_conversation

    tokenizer = load_tokenizer(str(model_dir))
    rows = read_examples(train)
    return [tokenize_conversation(tokenizer, full_messages(e, SYSTEM), "assistant", MAX_LENGTH) for e in rows]


# One switch at a time back to the plain setting, to see what each contributes (--ablations).
ABLATIONS = {"liger off": {"liger": False}, "fused AdamW off": {"fused_optimizer": False},
             "fp32 frozen base": {"frozen_weights": "float32"}, "checkpointing on": {"gradient_checkpointing": True},
             "random batches": {"group_by_length": False}}  # fmt: skip


def tunesmith_worker(
    model_dir: Path,
    train: Path,
    empty: Path,
    method: str,
    steps: int,
    batch: int,
    ablation: str | None = None,
    settings: dict | None = None,
) -> dict:
    """Tunesmith's train_model at its defaults, with `settings` (or the named ablation's) changed."""
    from tunesmith.config.schema import TrainingConfig
    from tunesmith.models.hardware import choose_precision
    from tunesmith.training.sft import train_files

    precision = choose_precision()
    config = TrainingConfig(max_steps=steps, batch_size=batch, max_seq_length=MAX_LENGTH, logging_steps=10,
                            save_steps=10 * steps, early_stopping_patience=None,
                            **(settings or ABLATIONS.get(ablation or "", {})))  # fmt: skip
    clock = StepClock()
    clock.install()
    out = Path(tempfile.mkdtemp(prefix=f"gpu-{method}-"))
    trained = train_files(str(model_dir), str(train), str(empty), SYSTEM, config, method, precision, out)
    hp = trained.hyperparameters
    switches = {k: hp.get(k) for k in ("attention", "padding_free", "fused_optimizer", "liger", "frozen_dtype")}
    name = f"tunesmith {method}" + (f" ({ablation})" if ablation else "")
    return {"run": name, "method": method, "precision": precision.dtype, "clock": clock.marks,
            "peak_gpu_mb": trained.metrics.get("peak_gpu_mb"), "optimizer": hp["optimizer"],
            "gradient_checkpointing": config.gradient_checkpointing, **switches}  # fmt: skip


def plain_trl_worker(model_dir: Path, train: Path, steps: int, batch: int) -> dict:
    """The script a user would write: SFTTrainer, SFTConfig defaults, the same LoRA adapter and examples."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from tunesmith.config.schema import TrainingConfig
    from tunesmith.training.methods.lora import peft_config

    cuda = torch.cuda.is_available()
    clock = StepClock()
    clock.install()
    out = Path(tempfile.mkdtemp(prefix="gpu-trl-"))
    args = SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch, report_to="none",
                     save_strategy="no", use_cpu=not cuda, bf16=cuda)  # fmt: skip
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    dataset = Dataset.from_list(_train_rows(model_dir, train))
    trainer = SFTTrainer(
        model=str(model_dir), args=args, train_dataset=dataset, peft_config=peft_config(TrainingConfig())
    )
    trainer.train()
    frozen = next(str(p.dtype).removeprefix("torch.") for p in trainer.model.parameters() if not p.requires_grad)
    return {"run": "plain TRL lora", "method": "lora", "precision": "bfloat16" if args.bf16 else "float32",
            "clock": clock.marks, "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "optimizer": str(getattr(args.optim, "value", args.optim)),
            "gradient_checkpointing": args.gradient_checkpointing, "attention": "sdpa", "padding_free": False,
            "fused_optimizer": False, "liger": False, "frozen_dtype": frozen}  # fmt: skip


def _spawn(args: list[str]) -> dict:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    env = os.environ | {"TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, __file__, *args, "--out", str(out)], env=env)
    if done.returncode != 0:
        return {"error": f"exit code {done.returncode}"}
    return json.loads(out.read_text())


def summarise(result: dict, shape: str, model_dir: Path, batch: int, warmup: int, lengths: list[int]) -> dict:
    import torch

    clock = StepClock()
    clock.marks = [tuple(m) for m in result.pop("clock")]
    tps = clock.tokens_per_s(warmup)
    gpu, peak = peak_flops()
    flops = matmul_flops_per_token(model_dir, result["method"], sum(lengths) / len(lengths))
    on_gpu = torch.cuda.is_available()
    # Peak memory comes with the longest batch: the estimate at the longest example, as the decision stage sizes it.
    est = estimate_gb(model_dir, result, batch, max(lengths), on_gpu)
    measured_gb = result["peak_gpu_mb"] * 2**20 / 1e9 if result.get("peak_gpu_mb") else None
    return {
        "shape": shape, **result, "gpu": gpu, "batch_size": batch, "steps_timed": max(len(clock.marks) - warmup - 1, 0),
        "tokens_per_s": round(tps, 1), "mfu": round(tps * flops / peak, 4) if peak else None,
        "peak_gpu_gb": round(measured_gb, 2) if measured_gb else None, "estimate_gb": round(est, 2),
        "peak_vs_estimate": round(measured_gb / est - 1, 3) if measured_gb else None,
    }  # fmt: skip


def save(rows: list[dict], lengths: list[int], args) -> None:
    for shape in {r["shape"] for r in rows}:
        ours = next((r for r in rows if r["shape"] == shape and r.get("run") == "tunesmith lora"), None)
        plain = next((r for r in rows if r["shape"] == shape and r.get("run") == "plain TRL lora"), None)
        if ours and plain and "tokens_per_s" in ours and "tokens_per_s" in plain:
            ours["speedup_vs_plain_trl"] = round(ours["tokens_per_s"] / plain["tokens_per_s"], 2)
    ordered = sorted(lengths)
    mix = {"mean": round(sum(ordered) / len(ordered), 1), "median": ordered[len(ordered) // 2], "max": ordered[-1]}
    report = {"examples": len(lengths), "tokens_per_example": mix, "steps": args.steps, "warmup": args.warmup,
              "batch_size": args.batch_size, "max_length": MAX_LENGTH,
              "goals": {"lora_1b_speedup_vs_plain_trl": 1.5, "lora_1b_mfu": 0.40, "peak_within_estimate": 0.15},
              "rows": rows}  # fmt: skip
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(report, indent=2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=None, help="default: llama-3.2-1b,qwen2.5-7b on a GPU, tiny on a CPU")
    parser.add_argument("--methods", default="lora,qlora,full")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--work", default=None, help="where models and data are kept between runs")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer folder (default: SmolLM2's, embedded)")
    parser.add_argument("--mix", default=None, help='JSONL of {"messages"} rows instead of the built-in mix')
    parser.add_argument("--results", default=str(RESULTS / "gpu_throughput.json"))
    parser.add_argument("--ablations", action="store_true", help="LoRA on the first shape with each switch off")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--ablation", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-throughput-"))
    if args.worker:
        train, empty = work / "train.jsonl", work / "empty.jsonl"
        model = Path(args.model)
        result = (
            plain_trl_worker(model, train, args.steps, args.batch_size)
            if args.worker == "plain-trl"
            else tunesmith_worker(model, train, empty, args.worker, args.steps, args.batch_size, args.ablation)
        )
        Path(args.out).write_text(json.dumps(result))
        return 0

    import importlib.util

    import torch

    cuda = torch.cuda.is_available()
    shapes = (args.shapes or ("llama-3.2-1b,qwen2.5-7b" if cuda else "tiny")).split(",")
    work.mkdir(parents=True, exist_ok=True)
    chats = (
        [json.loads(line)["messages"] for line in Path(args.mix).read_text().splitlines()]
        if args.mix
        else length_mix(args.examples)
    )
    train, _ = write_data(chats, work)
    rows: list[dict] = []
    lengths: list[int] = []
    for shape in shapes:
        model_dir = build_model(shape, work, args.tokenizer)
        lengths = [len(r["input_ids"]) for r in _train_rows(model_dir, train)]
        for method in args.methods.split(","):
            if method == "full" and shape == "qwen2.5-7b":
                continue  # 7B full fine-tuning needs ~110 GB: a sharded run, not one GPU
            if method == "qlora" and not (cuda and importlib.util.find_spec("bitsandbytes")):
                rows.append({"shape": shape, "run": "tunesmith qlora", "skipped": "needs CUDA and bitsandbytes"})
                continue
            runs = [[method]] + ([["plain-trl"]] if method == "lora" else [])
            if args.ablations and method == "lora" and shape == shapes[0]:
                runs += [[method, "--ablation", name] for name in ABLATIONS]
            for worker, *extra in runs:
                common = ["--model", str(model_dir), "--work", str(work), "--steps", str(args.steps),
                          "--batch-size", str(args.batch_size), *extra]  # fmt: skip
                result = _spawn(["--worker", worker, *common])
                if "error" in result:
                    rows.append({"shape": shape, "run": f"{worker} {method}", **result})
                    continue
                rows.append(summarise(result, shape, model_dir, args.batch_size, args.warmup, lengths))
                print(json.dumps(rows[-1]), flush=True)
                save(rows, lengths, args)  # a run cut short still leaves what it measured
    save(rows, lengths, args)
    header = f"{'shape':<14}{'run':<36}{'tokens/s':>10}{'MFU':>7}{'peak GB':>9}{'est. GB':>9}{'vs est.':>9}  switches"
    print("\n" + header)
    for r in rows:
        if "tokens_per_s" not in r:
            print(f"{r['shape']:<14}{r['run']:<36}  {r.get('skipped') or r.get('error')}")
            continue
        mfu = f"{r['mfu']:.0%}" if r["mfu"] is not None else "-"
        peak = f"{r['peak_gpu_gb']:.2f}" if r["peak_gpu_gb"] else "-"
        versus = f"{r['peak_vs_estimate']:+.0%}" if r["peak_vs_estimate"] is not None else "-"
        switches = ", ".join(f"{k}={r[k]}" for k in ("attention", "padding_free", "fused_optimizer", "liger",
                                                       "frozen_dtype", "gradient_checkpointing"))  # fmt: skip
        print(
            f"{r['shape']:<14}{r['run']:<36}{r['tokens_per_s']:>10}{mfu:>7}{peak:>9}{r['estimate_gb']:>9}{versus:>9}"
            f"  {switches}" + (f"  x{r['speedup_vs_plain_trl']} vs plain TRL" if "speedup_vs_plain_trl" in r else "")
        )
    print(f"\nGPU: {rows[0].get('gpu', 'cpu') if rows else '-'}; written: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
