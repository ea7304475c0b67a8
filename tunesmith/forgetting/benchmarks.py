"""General-capability benchmarks run through lm-eval, from local multiple-choice files (no hub needed).

lm-eval calls these "tasks"; we call them benchmarks, since tasks/ holds our own Prefect tasks.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import yaml

from tunesmith.config.schema import BenchmarkConfig, ForgettingConfig, tier_benchmarks
from tunesmith.console import progress
from tunesmith.forgetting.shared_prefix import shared_prefix

BENCHMARK_PREFIX = "tunesmith_"
CHUNK = 256  # log-likelihood requests scored between two progress updates


def _reporting(lm_class):
    """`lm_class` scoring its requests in chunks, longest first, so that the console can show how far it got."""

    class Reporting(lm_class):
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            results: list = [None] * len(requests)
            with progress.bar("answer choices", len(requests)):
                for chunk in _chunks(requests):
                    scored = super().loglikelihood([requests[i] for i in chunk], disable_tqdm=True)
                    for i, result in zip(chunk, scored, strict=True):
                        results[i] = result
                    progress.advance(len(chunk))
            return results

    return Reporting


def _chunks(requests) -> list[list[int]]:
    """Request indices in chunks of about CHUNK, each question's choices together (shared_prefix.py reads a question
    once for all of them), longest questions first: with batch_size "auto", lm-eval sizes its batches on the first
    chunk it sees."""
    by_context: dict[str, list[int]] = {}
    for i, request in enumerate(requests):
        by_context.setdefault(request.args[0], []).append(i)
    chunks: list[list[int]] = [[]]
    for context in sorted(by_context, key=lambda c: -max(len(c) + len(requests[i].args[1]) for i in by_context[c])):
        if len(chunks[-1]) >= CHUNK:
            chunks.append([])
        chunks[-1] += by_context[context]
    return [chunk for chunk in chunks if chunk]


def in_process_lm(model, tokenizer, batch_size: int | str):
    """lm-eval's HF model around a model already loaded here (base, merged, or with its adapter attached), so that
    every method, our own bottleneck adapters included, is measured the same way without loading weights again.
    On a CPU each question is read once for all its choices (shared_prefix.py)."""
    from lm_eval.models.huggingface import HFLM

    lm_class = shared_prefix(HFLM) if next(model.parameters()).device.type == "cpu" else HFLM
    return _reporting(lm_class)(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def served_lm(base_url: str, model_name: str, tokenizer_path: str, max_length: int, concurrent: int):
    """lm-eval's completions client for a vLLM server: prompt log-probabilities of the tokens lm-eval sends."""
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    return _reporting(LocalCompletionsAPI)(
        base_url=f"{base_url}/v1/completions",
        model=model_name,
        tokenizer=tokenizer_path,
        tokenizer_backend="huggingface",
        tokenized_requests=True,  # the same token ids the HF backend scores, not text re-tokenized by the server
        num_concurrent=concurrent,
        batch_size=8,
        max_length=max_length,
        max_retries=3,
        timeout=600,
    )


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


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether lm-eval could download its standard datasets from the Hugging Face hub."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return False
    try:
        import httpx

        return httpx.head("https://huggingface.co", timeout=timeout_s).status_code < 500
    except Exception:  # noqa: BLE001 - any network failure means "not reachable"
        return False


def choose_suite(settings: ForgettingConfig, device: str) -> tuple[list[BenchmarkConfig], list[str], str]:
    """(local benchmarks, lm-eval task names, why) for forgetting.tier on this device."""
    tier, how = settings.tier, "forgetting.tier"
    if tier == "auto":
        tier, how = "standard", f"forgetting.tier auto on {device}"
    if tier == "full":
        if hub_reachable():
            return [], settings.harness_tasks, f"full: lm-eval's own tasks ({how})"
        tier, how = "standard", "full asked for, but the Hugging Face hub is not reachable"
    if settings.benchmarks is not None:
        return settings.benchmarks, [], "your benchmarks (forgetting.benchmarks)"
    return tier_benchmarks(tier), [], f"{tier}: bundled benchmarks ({how})"


def lm_eval_batch_size(settings: ForgettingConfig, device: str) -> int | str:
    if settings.batch_size != "auto":
        return settings.batch_size
    return "auto" if device == "cuda" else 16


def run_benchmarks(
    lm,
    benchmarks: list[BenchmarkConfig],
    work_dir: Path,
    limit: int | None = None,
    seed: int = 1234,
    harness_tasks: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per benchmark: {"acc", "acc_stderr", "n", "correct"} for an lm-eval model (in_process_lm or served_lm);
    `correct` lists, question by question, whether the model got it right (for a paired before/after test)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    local = {write_benchmark_yaml(b, work_dir): b.name for b in benchmarks}
    names = {**local, **{task: task for task in harness_tasks or []}}
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=list(names),
        task_manager=TaskManager(include_path=str(work_dir), include_defaults=bool(harness_tasks)),
        limit=limit,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
        log_samples=True,
        bootstrap_iters=100,  # mean accuracy's stderr is closed-form; 0 would switch stderr off
    )
    scores = {}
    for task, name in names.items():
        row = results["results"][task]
        stderr = row.get("acc_stderr,none")
        samples = sorted(results["samples"][task], key=lambda s: s["doc_id"])
        scores[name] = {
            "acc": float(row["acc,none"]),
            "acc_stderr": float(stderr) if isinstance(stderr, (int, float)) and not math.isnan(stderr) else None,
            "n": int(results["n-samples"][task]["effective"]),
            "correct": [bool(s["acc"]) for s in samples],
        }
    return scores
