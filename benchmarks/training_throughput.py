"""Training throughput: every method on the default model, and Tunesmith against a plain TRL script.

Usage: python benchmarks/training_throughput.py [--steps 20] [--methods full,lora,...] [--skip-methods]
                                                [--set lora.dropout=0.0 ...]
Each measurement runs in a fresh process on the bundled tickets (chat-formatted with the same system prompt)
and the default SmolLM2-135M-Instruct. Part 1 trains each method for --steps steps with Tunesmith's trainer.
Part 2 runs, side by side, Tunesmith's LoRA training and the script a user would otherwise write: TRL's
SFTTrainer with its default settings and the same LoRA adapter, on the same examples and machine. Tokens/s
counts the real (non-padding) tokens trained on per second of training (evaluation excluded).
Writes benchmarks/results/training_throughput.json and prints both tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
METHODS = ["full", "lora", "dora", "qlora", "adapter", "prefix", "prompt", "ia3", "spectrum"]
LABELS = ["urgent", "billing", "technical", "general"]
SYSTEM = "Classify the customer message into exactly one of these labels: {labels}. Answer with the label only."


def _data(work: Path):
    from tunesmith.config.schema import DataConfig
    from tunesmith.curation.curate import curate
    from tunesmith.models.load import load_tokenizer
    from tunesmith.models.resolve import resolve_model
    from tunesmith.prompts import system_prompt

    base = resolve_model("smollm2-135m-instruct", Path("~/.cache/tunesmith/models"))
    system = system_prompt(SYSTEM, LABELS)
    data = curate(
        DataConfig(path=REPO / "data" / "tickets.jsonl", labels=LABELS), load_tokenizer(base), system, 256, work
    )
    return base, system, data


def _settings(pairs: list[str]) -> dict:
    """training key=value pairs, read as `tunesmith run --set training.<key>=<value>` reads them."""
    from tunesmith.config.load import apply_override

    settings: dict = {}
    for pair in pairs:
        apply_override(settings, pair)
    return settings


def tunesmith_worker(method: str, steps: int, settings: dict) -> dict:
    from tunesmith.config.schema import TrainingConfig
    from tunesmith.models.hardware import choose_precision
    from tunesmith.training.sft import train_files

    work = Path(tempfile.mkdtemp(prefix=f"thr-{method}-"))
    base, system, data = _data(work / "cur")
    config = TrainingConfig(
        max_steps=steps,
        logging_steps=5,
        eval_steps=steps,
        early_stopping_patience=None,
        max_seq_length=256,
        **settings,
    )
    precision = choose_precision(config.precision)
    trained = train_files(base, data.train_path, data.validation_path, system, config, method, precision, work / "out")
    m = trained.metrics
    return {
        "method": method,
        "settings": settings,
        "precision": precision.dtype,
        "steps": int(m["steps"]),
        "tokens_per_s": round(m["tokens_per_s"], 1),
        "train_s": round(m["wall_s"] - m["eval_s"], 2),
        "peak_rss_mb": round(m["peak_rss_mb"]),
        "trainable_params": int(m["trainable_params"]),
        "trainable_pct": round(m["trainable_pct"], 4),
        "tokens_per_step": round(m["tokens_per_s"] * (m["wall_s"] - m["eval_s"]) / max(m["steps"], 1), 1),
    }


def plain_trl_worker(steps: int) -> dict:
    """The script a user would write: messages dataset, SFTTrainer, SFTConfig defaults, a LoRA config."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from tunesmith.curation.records import read_examples
    from tunesmith.prompts import full_messages

    work = Path(tempfile.mkdtemp(prefix="thr-trl-"))
    base, system, data = _data(work / "cur")
    rows = [{"messages": full_messages(e, system)} for e in read_examples(Path(data.train_path))]
    trainer = SFTTrainer(
        model=base,
        train_dataset=Dataset.from_list(rows),
        # use_cpu is the one setting a CPU machine requires; everything else is left at its default.
        args=SFTConfig(
            output_dir=str(work / "out"), max_steps=steps, report_to="none", save_strategy="no", use_cpu=True
        ),
        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                               target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM"),
    )  # fmt: skip
    tokens_per_example = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) / len(trainer.train_dataset)
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    tokens = tokens_per_example * trainer.args.per_device_train_batch_size * trainer.state.global_step
    return {
        "method": "lora (plain TRL defaults)",
        "precision": "bfloat16" if trainer.args.bf16 else "float16" if trainer.args.fp16 else "float32",
        "gradient_checkpointing": trainer.args.gradient_checkpointing,
        "steps": trainer.state.global_step,
        "tokens_per_s": round(tokens / train_s, 1),
        "train_s": round(train_s, 2),
    }


def _spawn(args: list[str]) -> dict:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    env = os.environ | {"TOKENIZERS_PARALLELISM": "false"}
    subprocess.run([sys.executable, __file__, *args, "--out", str(out)], check=True, env=env)
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--set", action="append", default=[], help="training key=value (as in --set training.key)")
    parser.add_argument("--skip-methods", action="store_true", help="only the comparison with plain TRL")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = (
            plain_trl_worker(args.steps)
            if args.worker == "plain-trl"
            else tunesmith_worker(args.worker, args.steps, _settings(args.set))
        )
        Path(args.out).write_text(json.dumps(result))
        return 0

    sets = [arg for pair in args.set for arg in ("--set", pair)]
    methods = (
        []
        if args.skip_methods
        else [_spawn(["--worker", m, "--steps", str(args.steps), *sets]) for m in args.methods.split(",")]
    )
    ours = next((r for r in methods if r["method"] == "lora"), None) or _spawn(
        ["--worker", "lora", "--steps", str(args.steps), *sets]
    )
    plain = _spawn(["--worker", "plain-trl", "--steps", str(args.steps)])
    ratio = ours["tokens_per_s"] / plain["tokens_per_s"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / "training_throughput.json"
    target.write_text(
        json.dumps(
            {
                "steps": args.steps,
                "methods": methods,
                "tunesmith_lora": ours,
                "plain_trl": plain,
                "ratio": round(ratio, 3),
                "target_ratio": 1.0,
                "aim_ratio": 1.5,
            },
            indent=2,
        )
    )
    if methods:
        print(f"\n{'method':<10}{'tokens/s':>10}{'train s':>9}{'peak RSS MB':>13}{'trainable':>14}{'trainable %':>13}")
        for r in methods:
            print(
                f"{r['method']:<10}{r['tokens_per_s']:>10}{r['train_s']:>9}{r['peak_rss_mb']:>13}"
                f"{r['trainable_params']:>14,}{r['trainable_pct']:>13}"
            )
    print(
        f"\nTunesmith LoRA: {ours['tokens_per_s']} tokens/s ({ours['precision']}); plain TRL defaults: "
        f"{plain['tokens_per_s']} tokens/s ({plain['precision']}, gradient checkpointing "
        f"{plain['gradient_checkpointing']}); ratio {ratio:.2f}\nwritten: {target}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
