"""Where a training step's time goes: per-step wall times, a torch profiler table and a Python profile.

Usage: python benchmarks/profile_training_step.py [--shape llama-3.2-1b] [--method lora] [--batch-size 32]
                                                  [--steps 24] [--set key=value ...] [--plain-trl]

Trains the shape of benchmarks/gpu_throughput.py (randomly initialised, its length mix) with Tunesmith's
train_model (or, with --plain-trl, TRL's SFTTrainer defaults) and, without changing the run:
- times every optimizer step on a synchronised device (so a slow step, a recompilation, shows up alone);
- records steps 8-10 with torch.profiler (operators by self CPU time and by device time);
- records steps 12-19 with cProfile (Python functions by own time), where fixed per-step costs show.
Prints the tables and writes them under --out.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gpu_throughput as bench  # noqa: E402


class StepProfiler:
    """Wraps Trainer.training_step; profilers start and stop at fixed micro-steps."""

    def __init__(self, torch_steps: range, python_steps: range):
        self.torch_steps, self.python_steps = torch_steps, python_steps
        self.times: list[float] = []
        self.tokens: list[int] = []
        self.torch_table = self.cuda_table = self.python_table = ""

    def install(self) -> None:
        import torch
        from torch.profiler import ProfilerActivity, profile
        from transformers import Trainer

        original = Trainer.training_step
        me = self
        cuda = torch.cuda.is_available()
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        state: dict = {}

        def timed(trainer, model, inputs, *args, **kwargs):
            step = len(me.times)
            if step == me.torch_steps.start:
                state["torch"] = profile(activities=activities, record_shapes=False)
                state["torch"].__enter__()
            if step == me.python_steps.start:
                state["python"] = cProfile.Profile()
                state["python"].enable()
            loss = original(trainer, model, inputs, *args, **kwargs)
            if cuda:
                torch.cuda.synchronize()
            me.times.append(time.perf_counter())
            mask = inputs.get("attention_mask")
            me.tokens.append(int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel()))
            if step == me.torch_steps.stop - 1:
                prof = state.pop("torch")
                prof.__exit__(None, None, None)
                averages = prof.key_averages()
                me.torch_table = averages.table(sort_by="self_cpu_time_total", row_limit=30)
                if cuda:
                    me.cuda_table = averages.table(sort_by="self_cuda_time_total", row_limit=25)
            if step == me.python_steps.stop - 1:
                python = state.pop("python")
                python.disable()
                text = io.StringIO()
                stats = pstats.Stats(python, stream=text)
                stats.sort_stats("tottime").print_stats(40)
                stats.sort_stats("cumulative").print_stats(40)
                me.python_table = text.getvalue()
            return loss

        Trainer.training_step = timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default=None, help="default: llama-3.2-1b on a GPU, tiny on a CPU")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--work", default=None)
    parser.add_argument("--tokenizer", default=None)
    parser.add_argument("--plain-trl", action="store_true")
    parser.add_argument("--set", action="append", default=[], help="training key=value (JSON value)")
    parser.add_argument("--out", default=str(bench.RESULTS / "profile"))
    args = parser.parse_args()

    import torch

    work = Path(args.work or tempfile.mkdtemp(prefix="profile-step-"))
    work.mkdir(parents=True, exist_ok=True)
    shape = args.shape or ("llama-3.2-1b" if torch.cuda.is_available() else "tiny")
    train, empty = bench.write_data(bench.length_mix(args.examples), work)
    model_dir = bench.build_model(shape, work, args.tokenizer)
    profiler = StepProfiler(range(8, 11), range(12, min(20, args.steps)))
    profiler.install()
    settings = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.plain_trl:
        result = bench.plain_trl_worker(model_dir, train, args.steps, args.batch_size)
    else:
        result = bench.tunesmith_worker(
            model_dir, train, empty, args.method, args.steps, args.batch_size, settings=settings
        )
    gaps = [b - a for a, b in zip(profiler.times, profiler.times[1:], strict=False)]
    steady = sorted(gaps[5:]) or gaps
    summary = {
        "shape": shape, "run": "plain TRL" if args.plain_trl else f"tunesmith {args.method}", "settings": settings,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "step_s": [round(g, 4) for g in gaps], "median_step_s": round(steady[len(steady) // 2], 4),
        "tokens_per_step": profiler.tokens, "peak_gpu_mb": result.get("peak_gpu_mb"),
        "switches": {k: result.get(k) for k in ("attention", "padding_free", "fused_optimizer", "liger",
                                                  "frozen_dtype", "optimizer", "gradient_checkpointing")},
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = ("plain-trl" if args.plain_trl else args.method) + f"-b{args.batch_size}" + "".join(f"-{k}" for k in settings)
    (out / f"{shape}-{tag}.json").write_text(json.dumps(summary, indent=2))
    (out / f"{shape}-{tag}.txt").write_text(
        "\n\n".join([profiler.torch_table, profiler.cuda_table, profiler.python_table])
    )
    print(json.dumps(summary))
    print(profiler.torch_table)
    print(profiler.cuda_table)
    print(profiler.python_table[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
