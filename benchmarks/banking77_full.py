"""Full banking77 (77 intents): the default model and method, trained on its train split, scored on its test split.

Usage:
  python benchmarks/banking77_full.py curate [--work DIR]
  python benchmarks/banking77_full.py train [--work DIR] [--method lora] [--base-examples 500] [--set key=value ...]

`curate` runs the pipeline's curation stage on ../shared/data/banking77/train.jsonl with its test.jsonl as
data.test_path (defaults otherwise: dedup, leakage check against the test split, 90/10 train/validation split,
Great Expectations suite) and writes the curated splits to WORK/curated. `train` trains the method at its
defaults on them (LoRA: what the decision stage picks for this data at the default priority, cost), scores the
test split with the fine-tuned model and, on the first --base-examples test examples, the base model with the
default zero-shot prompt, then prints a table and writes benchmarks/results/banking77_full[-METHOD].json.

The two steps are apart so that the curated splits (a few MB) can travel to a GPU machine without the tracking
and orchestration services: `train` needs only the training libraries.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
BANKING77 = REPO.parent / "shared" / "data" / "banking77"


def write_config(work: Path, data_dir: Path) -> Path:
    labels = sorted({json.loads(line)["label"] for line in (data_dir / "train.jsonl").read_text().splitlines()})
    config = work / "run.yaml"
    config.write_text(
        "name: banking77-full\n"
        f"output_dir: {work / 'runs'}\n"
        f"data:\n  path: {data_dir / 'train.jsonl'}\n  test_path: {data_dir / 'test.jsonl'}\n"
        f"  labels: {json.dumps(labels)}\n",
        encoding="utf-8",
    )
    return config


def curate(work: Path, data_dir: Path) -> None:
    from tunesmith.config.load import load_config
    from tunesmith.curation.stage import run_curation, training_threshold
    from tunesmith.models.prepared import prepare_model
    from tunesmith.prompts import training_prompt

    config = load_config(write_config(work, data_dir))
    model = prepare_model(config.model, config.model_cache_dir)
    start = time.perf_counter()
    data = run_curation(config.data, model.path, False, training_prompt(config), config.training.max_seq_length,
                        work / "curated", training_threshold(config))  # fmt: skip
    print(data.headline(), f"({time.perf_counter() - start:.0f} s)")
    if data.problems:
        sys.exit("\n".join(data.problems))


def curated_here(work: Path):
    """The curation record with its split files found in WORK/curated (it may have been written elsewhere)."""
    from tunesmith.records import CuratedData

    folder = work / "curated"
    data = CuratedData(**json.loads((folder / "curation_report.json").read_text()))
    return replace(data, **{f"{name}_path": str(folder / f"{name}.jsonl") for name in ("train", "validation", "test")})


def train(work: Path, data_dir: Path, method: str, base_examples: int, overrides: list[str]) -> dict:
    import torch

    from tunesmith.config.load import load_config
    from tunesmith.evaluation.test_set import load_test_set, score_test_set
    from tunesmith.models.load import load_model
    from tunesmith.models.prepared import prepare_model
    from tunesmith.prompts import PromptTemplate
    from tunesmith.training.inference import load_trained
    from tunesmith.training.stage import run_training

    config = load_config(write_config(work, data_dir), overrides + ["orchestration.cache=false"])
    data = curated_here(work)
    model = prepare_model(config.model, config.model_cache_dir)
    start = time.perf_counter()
    trained = run_training(config, data, model, method, work / "runs" / method, run_id=f"benchmark-{method}")
    train_s = time.perf_counter() - start
    tests = load_test_set(config, data)
    batch = config.evaluation.batch_size

    tuned, tokenizer = load_trained(model.path, method, trained.output_dir, model.precision)
    start = time.perf_counter()
    scored = score_test_set(tuned, tokenizer, tests, batch, perplexity=False)
    score_s = time.perf_counter() - start
    del tuned
    base_metrics = {}
    if base_examples:
        base, tokenizer = load_model(model.path, model.precision)
        sample = replace(tests, examples=tests.examples[:base_examples])
        base_metrics = score_test_set(base, tokenizer, sample, batch, PromptTemplate(tests.untrained_system),
                                      perplexity=False).metrics  # fmt: skip
    hp = trained.hyperparameters
    return {
        "data": {k: data.counts[k] for k in ("read", "kept_unique", "train", "validation", "test", "leakage_removed")},
        "method": method,
        "model": config.model,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
        "precision": model.precision.dtype,
        "hyperparameters": {
            k: hp.get(k)
            for k in (
                "learning_rate",
                "epochs",
                "batch_size",
                "total_steps",
                "max_seq_length",
                "warmup_ratio",
                "lr_scheduler",
            )
        },  # fmt: skip
        "method_settings": _settings(getattr(config.training, method, None)),
        "steps": trained.metrics.get("steps"),
        "train_s": round(train_s, 1),
        "tokens_per_s": trained.metrics.get("tokens_per_s"),
        "best_eval_loss": trained.metrics.get("best_eval_loss"),
        "test_examples": len(tests.examples),
        "finetuned": scored.metrics,
        "score_s": round(score_s, 1),
        "base_examples": min(base_examples, len(tests.examples)),
        "base": base_metrics,
    }


def _settings(section) -> dict:
    return section.model_dump(mode="json") if hasattr(section, "model_dump") else dict(section or {})


def report(result: dict) -> str:
    from tunesmith.comparison.table import interval

    n = result["test_examples"]
    acc = result["finetuned"]["accuracy"]
    base = result["base"].get("accuracy")
    lines = [
        f"banking77, 77 intents: {result['data']['train']} train / {result['data']['validation']} validation "
        f"examples from its train split; {n} test examples (its test split)",
        f"{result['model']}, {result['method']} at its defaults ({result['hyperparameters']}; "
        f"{result['method_settings']}), {result['device']}",
        "",
        "| model | test accuracy | 95% CI | macro F1 | train s | steps |",
        "|---|---|---|---|---|---|",
    ]
    if base is not None:
        lines.append(f"| base, zero-shot (first {result['base_examples']}) | {base:.3f} | "
                     f"{interval(base, result['base_examples'], 'accuracy')} | "
                     f"{result['base'].get('macro_f1', float('nan')):.3f} | - | - |")  # fmt: skip
    lines.append(f"| fine-tuned | {acc:.3f} | {interval(acc, n, 'accuracy')} | "
                 f"{result['finetuned'].get('macro_f1', float('nan')):.3f} | {result['train_s']:.0f} | "
                 f"{result['steps']} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["curate", "train"])
    parser.add_argument("--work", type=Path, default=RESULTS / "banking77_full_work")
    parser.add_argument("--data", type=Path, default=BANKING77, help="a folder with train.jsonl and test.jsonl")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--base-examples", type=int, default=500)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    if not (args.data / "train.jsonl").is_file():
        sys.exit(f"{args.data / 'train.jsonl'} not found: this benchmark needs the shared banking77 data")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.step == "curate":
        curate(args.work, args.data)
        return
    result = train(args.work, args.data, args.method, args.base_examples, args.overrides)
    print(report(result))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"banking77_full-{args.method}.json"
    out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
