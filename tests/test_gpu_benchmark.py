"""benchmarks/gpu_throughput.py on a machine without a GPU: the tiny shape, Tunesmith's LoRA and plain TRL's,
each in its own process, measured and tabled the same way (the GPU figures come from a GPU machine)."""

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the benchmark runs the real shapes, for minutes")
def test_the_gpu_benchmark_runs_a_tiny_shape_on_a_cpu(tmp_path):
    results = tmp_path / "gpu.json"
    args = ["--methods", "lora,qlora", "--workloads", "generation", "--steps", "3", "--warmup", "1", "--examples",
            "16"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_throughput.py"), *args, "--results", str(results),
         "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(results.read_text())
    runs = {r["run"]: r for r in report["rows"]}
    assert set(runs) == {"tunesmith lora", "plain TRL lora", "careful TRL lora", "tunesmith qlora"}
    assert runs["tunesmith qlora"]["skipped"] == "needs CUDA and bitsandbytes"
    ours, plain, careful = runs["tunesmith lora"], runs["plain TRL lora"], runs["careful TRL lora"]
    for r in (ours, plain, careful):
        assert r["tokens_per_s"] > 0 and r["estimate_gb"] > 0 and r["flops_per_token"] > 0
    assert ours["speedup_vs_plain_trl"] == pytest.approx(ours["tokens_per_s"] / plain["tokens_per_s"], rel=0.01)
    assert ours["speedup_vs_careful_trl"] == pytest.approx(ours["tokens_per_s"] / careful["tokens_per_s"], rel=0.01)
    # TRL's defaults; a careful TRL user's packing; Tunesmith's packed micro-batches with the CPU's kernel
    assert plain["gradient_checkpointing"] is True and plain["tokens_per_batch"] is None
    assert careful["gradient_checkpointing"] is False and careful["padding_free"] is True
    assert ours["tokens_per_batch"] == 8192 and ours["attention"] == "sdpa" and ours["padding_free"] is True
    mix = report["workloads"]["generation"]["tokens_per_example"]
    assert mix["max"] > mix["median"]  # instructions of many lengths
    assert "tunesmith lora" in done.stdout and "vs careful TRL" in done.stdout
