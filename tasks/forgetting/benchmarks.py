"""General-capability benchmarks run through lm-eval, from local multiple-choice files (no hub needed).

lm-eval calls these "tasks"; we call them benchmarks, since tasks/ is the name of our own stages.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import yaml

from tasks.config.schema import BenchmarkConfig

BENCHMARK_PREFIX = "tunesmith_"


def write_benchmark_yaml(benchmark: BenchmarkConfig, out_dir: Path) -> str:
    """Write an lm-eval task definition for a {"question","choices","answer"} JSONL file; return its name."""
    name = BENCHMARK_PREFIX + benchmark.name
    spec = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(Path(benchmark.path).resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "Question: {{question}}\nAnswer:",
        "doc_to_choice": "choices",
        "doc_to_target": "answer",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return name


def run_benchmarks(
    model,
    tokenizer,
    benchmarks: list[BenchmarkConfig],
    work_dir: Path,
    limit: int | None = None,
    seed: int = 1234,
    batch_size: int = 16,
) -> dict[str, dict[str, Any]]:
    """Accuracy per benchmark ({"acc", "acc_stderr", "n"}) for an already loaded model.

    Passing the loaded model (base, merged, or with its adapter attached) means every method, our own
    bottleneck adapters included, is measured the same way, without lm-eval loading weights again.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    names = [write_benchmark_yaml(b, work_dir) for b in benchmarks]
    results = lm_eval.simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size),
        tasks=names,
        task_manager=TaskManager(include_path=str(work_dir), include_defaults=False),
        batch_size=batch_size,
        limit=limit,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
        log_samples=False,
        bootstrap_iters=100,  # mean accuracy's stderr is closed-form; 0 would switch stderr off
    )
    scores = {}
    for benchmark, name in zip(benchmarks, names, strict=True):
        row = results["results"][name]
        stderr = row.get("acc_stderr,none")
        scores[benchmark.name] = {
            "acc": float(row["acc,none"]),
            "acc_stderr": float(stderr) if isinstance(stderr, (int, float)) and not math.isnan(stderr) else None,
            "n": int(results["n-samples"][name]["effective"]),
        }
    return scores
