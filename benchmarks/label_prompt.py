"""Label sets of any size: training with and without the label list in the prompt, and label scoring speed.

Usage: python benchmarks/label_prompt.py [--per-label 6] [--test-per-label 2] [--steps 40] [--timed 16]
On banking77 with all 77 intents (../shared/data/banking77), the default model is fine-tuned with LoRA for the
same number of steps on the same examples twice: once with the label list in the system prompt (as the
untrained baselines see it) and once with Tunesmith's default trained prompt, which leaves it out. For each:
prompt and example length in tokens, training tokens/s and wall time, and test accuracy.
Then label scoring, on the first --timed test examples for the base and the fine-tuned model: the prefix tree
(Tunesmith's scorer) against one prompt at a time with its cache shared by the labels in chunks of 16 (the
scorer before it), same scores. Writes benchmarks/results/label_prompt.json and prints the tables.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
RESULTS = REPO / "benchmarks" / "results"
DATA = REPO.parent / "shared" / "data" / "banking77"


def _rows(path: Path, n: int, seed: int) -> list[dict]:
    from real_data_matrix import per_label

    return per_label([json.loads(line) for line in path.read_text().splitlines() if line.strip()], n, seed)


def _examples(rows: list[dict]):
    from tunesmith.curation.records import make_example

    return [
        make_example(
            [{"role": "user", "content": r["text"]}, {"role": "assistant", "content": r["label"]}],
            f"banking77 row {i}",
            r["label"],
        )
        for i, r in enumerate(rows)
    ]


def cached_label_logprobs(model, tokenizer, prompts, labels, chunk: int = 16):
    """The scorer Tunesmith used before the prefix tree: one prompt at a time, its cache copied for each chunk
    of labels, every label's tokens run in full. Kept here as the reference the tree is timed against."""
    import numpy as np
    import torch

    from tunesmith.evaluation.label_tree import reply_tokens

    scores = np.empty((len(prompts), len(labels)))
    with torch.no_grad():
        for i, messages in enumerate(prompts):
            head = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
            prompt_ids = list(head["input_ids"])
            continuations = []
            for label in labels:
                full = tokenizer.apply_chat_template(
                    messages + [{"role": "assistant", "content": label}], tokenize=True, return_dict=True
                )["input_ids"]
                continuations.append(reply_tokens(tokenizer, prompt_ids, list(full)))
            out = model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            for start in range(0, len(labels), chunk):
                part = continuations[start : start + chunk]
                width = max(len(c) for c in part)
                ids = torch.full((len(part), width), tokenizer.pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(part), len(prompt_ids) + width), dtype=torch.long)
                mask[:, : len(prompt_ids)] = 1
                for row, cont in enumerate(part):
                    ids[row, : len(cont)] = torch.tensor(cont)
                    mask[row, len(prompt_ids) : len(prompt_ids) + len(cont)] = 1
                cache = copy.deepcopy(out.past_key_values)
                cache.batch_repeat_interleave(len(part))
                logprobs = torch.log_softmax(
                    model(input_ids=ids, attention_mask=mask, past_key_values=cache).logits.float(), -1
                )
                for row, cont in enumerate(part):
                    scores[i, start + row] = first[cont[0]].item() + sum(
                        logprobs[row, j - 1, cont[j]].item() for j in range(1, len(cont))
                    )
    return scores


def _timed_scoring(model, tokenizer, prompts, labels) -> dict:
    import numpy as np

    from tunesmith.evaluation.evaluate import CANDIDATES
    from tunesmith.evaluation.scoring import label_logprobs

    start = time.perf_counter()
    before = cached_label_logprobs(model, tokenizer, prompts, labels)
    before_s = time.perf_counter() - start
    start = time.perf_counter()
    tree = label_logprobs(model, tokenizer, prompts, labels, batch_size=8)
    tree_s = time.perf_counter() - start
    start = time.perf_counter()
    pruned = label_logprobs(model, tokenizer, prompts, labels, batch_size=8, candidates=CANDIDATES)
    pruned_s = time.perf_counter() - start
    return {
        "examples": len(prompts),
        "before_s_per_example": round(before_s / len(prompts), 3),
        "tree_s_per_example": round(tree_s / len(prompts), 3),
        "tree_pruned_s_per_example": round(pruned_s / len(prompts), 3),
        "speedup_all_labels": round(before_s / tree_s, 2),
        "speedup_best_label": round(before_s / pruned_s, 2),
        "max_abs_difference": float(np.abs(before - tree).max()),
        "same_choice": bool((before.argmax(1) == pruned.argmax(1)).all()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-label", type=int, default=6)
    parser.add_argument("--test-per-label", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--timed", type=int, default=16)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs {DATA}")

    from tunesmith.config.schema import TrainingConfig
    from tunesmith.curation.records import write_examples
    from tunesmith.evaluation.evaluate import score_model
    from tunesmith.formats import get_format
    from tunesmith.models.hardware import choose_precision
    from tunesmith.models.load import load_model
    from tunesmith.models.resolve import resolve_model
    from tunesmith.prompts import prompt_messages, system_prompt
    from tunesmith.training.inference import load_trained
    from tunesmith.training.sft import train_files

    train_rows = _rows(DATA / "train.jsonl", args.per_label, 0)
    labels = sorted({r["label"] for r in train_rows})
    test = _examples(_rows(DATA / "test.jsonl", args.test_per_label, 1))
    work = Path(tempfile.mkdtemp(prefix="label-prompt-"))
    train_path = write_examples(_examples(train_rows), work / "train.jsonl")
    validation_path = write_examples(_examples(_rows(DATA / "train.jsonl", 1, 2)), work / "validation.jsonl")
    base = resolve_model("smollm2-135m-instruct", Path("~/.cache/tunesmith/models"))
    precision = choose_precision("float32")
    _, tokenizer = load_model(base, precision)

    arms = {
        "label list in the prompt": system_prompt(get_format("classification").baseline_system, labels),
        "no label list (default)": get_format("classification").training_system,
    }
    rows, timings = [], {}
    for name, system in arms.items():
        lengths = [
            len(
                tokenizer.apply_chat_template(
                    prompt_messages(e, system) + e.messages[-1:], tokenize=True, return_dict=True
                )["input_ids"]
            )
            for e in test
        ]
        config = TrainingConfig(
            method="lora", max_steps=args.steps, batch_size=8, eval_steps=args.steps, early_stopping_patience=None,
            logging_steps=5, max_seq_length=max(lengths) + 32,
        )  # fmt: skip
        start = time.perf_counter()
        trained = train_files(
            base, str(train_path), str(validation_path), system, config, "lora", precision, work / name.split()[0]
        )
        train_s = time.perf_counter() - start
        model, tok = load_trained(base, "lora", trained.output_dir, precision)
        start = time.perf_counter()
        scored = score_model(model, tok, test, system, labels, 8)
        eval_s = time.perf_counter() - start
        rows.append(
            {
                "prompt": name,
                "mean_example_tokens": round(sum(lengths) / len(lengths), 1),
                "train_tokens_per_s": round(trained.metrics["tokens_per_s"], 1),
                "train_wall_s": round(train_s, 1),
                "test_accuracy": round(scored.metrics["accuracy"], 4),
                "eval_s_per_example": round(eval_s / len(test), 3),
            }
        )
        prompts = [prompt_messages(e, system) for e in test[: args.timed]]
        timings[f"fine-tuned, {name}"] = _timed_scoring(model, tok, prompts, labels)
        del model
    base_model, tok = load_model(base, precision)
    prompts = [prompt_messages(e, arms["label list in the prompt"]) for e in test[: args.timed]]
    timings["base model, label list in the prompt"] = _timed_scoring(base_model, tok, prompts, labels)

    # What the issue timed: scoring the base and the fine-tuned model on all 992 banking77 test examples, here with
    # the prompts each model gets by default (base: with the list; fine-tuned: without), projected per example.
    pair = (timings["base model, label list in the prompt"], timings["fine-tuned, no label list (default)"])
    projected = {
        "examples": 992,
        "before_min": round(992 * sum(t["before_s_per_example"] for t in pair) / 60, 1),
        "after_min": round(992 * sum(t["tree_pruned_s_per_example"] for t in pair) / 60, 1),
    }
    result = {
        "dataset": f"banking77, {len(labels)} labels, {len(train_rows)} train / {len(test)} test examples",
        "model": "SmolLM2-135M-Instruct, LoRA (defaults), fp32",
        "steps": args.steps,
        "training": rows,
        "label_scoring": timings,
        "projected_full_test_split": projected,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "label_prompt.json").write_text(json.dumps(result, indent=2))
    print(result["dataset"], "|", result["model"], "|", args.steps, "steps of batch 8")
    print("| prompt | tokens/example | train tokens/s | train wall s | test accuracy | eval s/example |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['prompt']} | {r['mean_example_tokens']} | {r['train_tokens_per_s']} | {r['train_wall_s']} | "
              f"{r['test_accuracy']:.3f} | {r['eval_s_per_example']} |")  # fmt: skip
    print("\n| model and prompt | before s/example | tree (all labels) | tree (best label) | speed-up | same choice |")
    print("|---|---|---|---|---|---|")
    for name, t in timings.items():
        print(f"| {name} | {t['before_s_per_example']} | {t['tree_s_per_example']} | "
              f"{t['tree_pruned_s_per_example']} | "
              f"{t['speedup_best_label']}x | {t['same_choice']} |")  # fmt: skip
    print(f"\nbase + fine-tuned on all 992 test examples, projected from {args.timed} timed: "
          f"{projected['before_min']} min before, {projected['after_min']} min with the tree")  # fmt: skip


if __name__ == "__main__":
    main()
