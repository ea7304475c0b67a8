"""How a multi-label model is best read: its generated answer parsed into a set (what Tunesmith does) against the
single-label scorer (every label's log-likelihood as the whole reply, the most likely one taken), on the same test
split and the same trained model.

Usage: python benchmarks/multilabel_scoring.py CONFIG TRAINED_FOLDER [--limit N]
CONFIG is the run's config (its data is curated again, to the same splits); TRAINED_FOLDER the run's
training/model. Prints a table of seconds per example, samples/micro/macro F1, subset accuracy and the share of
named labels that are not labels, and writes benchmarks/results/multilabel_scoring.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tunesmith.config import load_config
from tunesmith.curation.records import read_examples
from tunesmith.curation.stage import run_curation
from tunesmith.evaluation.multilabel import multilabel_metrics, score_label_sets
from tunesmith.evaluation.scoring import label_logprobs
from tunesmith.models.hardware import choose_precision
from tunesmith.models.manifest import read_manifest
from tunesmith.models.resolve import resolve_model
from tunesmith.prompts import prompt_messages, training_prompt
from tunesmith.training.inference import load_trained

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("trained")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    config = load_config(args.config)
    base = resolve_model(config.model, config.model_cache_dir)
    with tempfile.TemporaryDirectory() as scratch:
        data = run_curation(config.data, base, False, training_prompt(config), None, Path(scratch))
        test = [e for e in read_examples(data.test_path) if e.origin == "task"][: args.limit]
    labels = data.labels
    info = read_manifest(Path(args.trained))
    model, tokenizer = load_trained(base, info["method"], args.trained, choose_precision("auto"))
    prompts = [prompt_messages(e, info.get("system", "")) for e in test]

    start = time.perf_counter()
    generated = score_label_sets(model, tokenizer, prompts, test, labels, batch_size=8)
    generated_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = label_logprobs(model, tokenizer, prompts, labels, batch_size=8)
    single_s = time.perf_counter() - start
    single = multilabel_metrics([e.labels for e in test], [[labels[int(i)]] for i in scores.argmax(axis=1)], labels)

    keys = ("samples_f1", "micro_f1", "macro_f1", "subset_accuracy")
    rows = {
        "generated set, parsed": {"s_per_example": generated_s / len(test)}
        | {k: generated.metrics[k] for k in (*keys, "invalid_label_rate")},
        "most likely single label": {"s_per_example": single_s / len(test)}
        | {k: single[k] for k in keys}
        | {"invalid_label_rate": 0.0},
    }
    multi = sum(len(e.labels) > 1 for e in test)
    print(f"{len(test)} test examples ({multi} with two labels or more), {len(labels)} labels")
    header = ("reading", "s/example", "samples F1", "micro F1", "macro F1", "subset", "invalid")
    print("{:<26} {:>9} {:>10} {:>8} {:>8} {:>6} {:>7}".format(*header))
    for name, r in rows.items():
        print(f"{name:<26} {r['s_per_example']:>9.3f} {r['samples_f1']:>10.3f} {r['micro_f1']:>8.3f} "
              f"{r['macro_f1']:>8.3f} {r['subset_accuracy']:>6.3f} {r['invalid_label_rate']:>7.3f}")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "multilabel_scoring.json"
    out.write_text(json.dumps({"n": len(test), "multi_label_examples": multi, "labels": len(labels), "rows": rows},
                              indent=2))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
