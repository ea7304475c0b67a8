import json
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import LABELS, REPO
from tunesmith.config.schema import TrainingConfig
from tunesmith.curation.records import make_example, read_examples, write_examples
from tunesmith.evaluation.scoring import label_logprobs
from tunesmith.models.load import load_model, load_tokenizer
from tunesmith.models.manifest import MANIFEST
from tunesmith.prompts import full_messages, prompt_messages
from tunesmith.records import Example, Precision
from tunesmith.training.inference import load_trained
from tunesmith.training.sft import train_files
from tunesmith.training.tokenize import tokenize_conversation

CPU32 = Precision("cpu", "float32", "tests")
# Rates high enough to memorise four examples in a few dozen steps on a random tiny model. Prefix tuning at 1e-1
# only just halved its loss in 40 steps (last/first 0.45 to 0.49 over four training seeds), too close to the
# halving the test asks for; at 3e-1 it is 0.07 to 0.10.
FAST_RATES = {
    "full": 2e-3,
    "lora": 1e-2,
    "dora": 1e-2,
    "qlora": 1e-2,
    "adapter": 1e-2,
    "prefix": 3e-1,
    "prompt": 1e-1,
    "ia3": 1e-1,
    "spectrum": 3e-3,
}


def _memorisable_set(tmp_path):
    texts = ["site down now", "refund my card", "app crashes on login", "office hours?"]
    examples = [
        make_example([{"role": "user", "content": t}, {"role": "assistant", "content": label}], f"mem:{i}", label)
        for i, (t, label) in enumerate(zip(texts, LABELS, strict=True))
    ]
    return write_examples(examples * 4, tmp_path / "train.jsonl"), write_examples(examples, tmp_path / "val.jsonl")


def _fast(method: str, steps: int = 40, **overrides) -> TrainingConfig:
    settings = dict(
        max_steps=steps,
        learning_rate=FAST_RATES[method],
        batch_size=4,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        logging_steps=5,
        eval_steps=steps,
        early_stopping_patience=None,
    )
    return TrainingConfig(**(settings | overrides))


def min_answer_probability(model, tokenizer, examples: list[Example], system: str, choices: list[str]) -> float:
    """The lowest probability the model gives any example's whole answer (end token included).

    When it is above 0.5, every token of every answer has a probability above 0.5, so it is the greedy choice
    whatever else the model considers: greedy generation then reproduces the answers, and scoring by label
    likelihood picks them. Float rounding, which differs between CPUs, moves these probabilities by about 1e-6;
    what differs between CPUs beyond that is the training trajectory, which is why tests check this first."""
    scores = label_logprobs(model, tokenizer, [prompt_messages(e, system) for e in examples], choices)
    return float(np.exp(min(scores[i, choices.index(e.answer)] for i, e in enumerate(examples))))


def _validation_loss(model, tokenizer, val_path) -> float:
    """Token-mean loss over the validation set, the way the trainer computes it."""
    rows = [
        tokenize_conversation(tokenizer, full_messages(e, "Classify."), "assistant") for e in read_examples(val_path)
    ]
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.tensor([r["input_ids"] + [tokenizer.pad_token_id] * (width - len(r["input_ids"])) for r in rows])
    labels = torch.tensor([r["labels"] + [-100] * (width - len(r["labels"])) for r in rows])
    mask = (torch.arange(width)[None, :] < torch.tensor([len(r["input_ids"]) for r in rows])[:, None]).long()
    with torch.no_grad():
        return model(
            input_ids=ids.to(model.device), attention_mask=mask.to(model.device), labels=labels.to(model.device)
        ).loss.item()


@pytest.mark.parametrize("method", list(FAST_RATES))
def test_every_method_learns_saves_and_reloads_to_the_same_outputs(method, tmp_path, tiny_model):
    train, val = _memorisable_set(tmp_path)
    trained = train_files(
        str(tiny_model), str(train), str(val), "Classify.", _fast(method), method, CPU32, tmp_path / "out"
    )

    losses = [h["loss"] for h in trained.history if "loss" in h]
    assert losses[-1] < 0.5 * losses[0], losses
    assert trained.metrics["steps"] == 40
    assert 0 < trained.metrics["trainable_pct"] <= 100
    manifest = json.loads((tmp_path / "out" / "model" / MANIFEST).read_text())
    assert manifest["method"] == method and manifest["base_model"] == str(tiny_model)

    model, tokenizer = load_trained(str(tiny_model), method, trained.output_dir, CPU32, merge=False)
    # The trainer's evaluation runs TRL's compact LM head on the labelled positions only; a plain forward pass of
    # the reloaded model differs from it by float rounding: measured at most 3e-7 absolute (1e-4 relative on a
    # loss of 8e-4 after full fine-tuning) and, for bitsandbytes' 4-bit CPU kernels, 2e-5 absolute (6e-4 relative).
    # A reload that lost or doubled any trained weight moves the loss by orders of magnitude, not by these.
    tolerance = {"rel": 1e-2} if method == "qlora" else {"rel": 1e-3, "abs": 1e-4}
    assert _validation_loss(model, tokenizer, val) == pytest.approx(trained.metrics["final_eval_loss"], **tolerance)


def test_lora_trains_only_the_adapter_and_leaves_the_base_untouched(tmp_path, tiny_model):
    train, val = _memorisable_set(tmp_path)
    trained = train_files(
        str(tiny_model), str(train), str(val), "Classify.", _fast("lora"), "lora", CPU32, tmp_path / "out"
    )
    adapter = load_file(f"{trained.output_dir}/adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert any(name.endswith("lora_B.weight") and t.abs().sum() > 0 for name, t in adapter.items())
    base, _ = load_model(str(tiny_model), CPU32)
    tuned, _ = load_trained(str(tiny_model), "lora", trained.output_dir, CPU32)
    assert not torch.allclose(
        base.model.layers[0].self_attn.q_proj.weight, tuned.model.layers[0].self_attn.q_proj.weight
    )
    # every linear layer gets an adapter (the default): the MLP moves too; norms and embeddings never do
    assert not torch.allclose(base.model.layers[0].mlp.up_proj.weight, tuned.model.layers[0].mlp.up_proj.weight)
    assert torch.equal(base.model.layers[0].input_layernorm.weight, tuned.model.layers[0].input_layernorm.weight)
    assert torch.equal(base.model.embed_tokens.weight, tuned.model.embed_tokens.weight)


def test_an_untrained_prefix_is_the_models_own_keys_and_values_for_real_text(tiny_model):
    """Prefix tuning starts from real activations (Li & Liang, 2021): before training, the prefixed model reads
    an input exactly as the base model reads the init text followed by that input."""
    from tunesmith.training.methods import METHODS

    config = TrainingConfig(prefix={"num_virtual_tokens": 5, "init_text": "refund my card"})
    model = METHODS["prefix"].build(str(tiny_model), config, CPU32).eval()
    tokenizer = load_tokenizer(str(tiny_model))
    text = tokenizer("refund my card", add_special_tokens=False)["input_ids"]
    prefix = torch.tensor((text * 5)[:5])
    x = torch.tensor([tokenizer("please help with my bill", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        prefixed = model(input_ids=x, attention_mask=torch.ones_like(x)).logits
        expected = model.get_base_model()(input_ids=torch.cat([prefix[None], x], 1)).logits[:, 5:]
    assert torch.allclose(prefixed, expected, atol=1e-4)


@pytest.mark.parametrize("method", ["lora", "ia3", "qlora"])
def test_merged_model_gives_the_same_outputs_as_the_adapter(method, tmp_path, tiny_model):
    train, val = _memorisable_set(tmp_path)
    trained = train_files(
        str(tiny_model), str(train), str(val), "Classify.", _fast(method, merge=True), method, CPU32, tmp_path / "out"
    )
    assert trained.merged_dir and json.loads((tmp_path / "out" / "merged" / MANIFEST).read_text())["method"] == "merged"
    unmerged, tokenizer = load_trained(str(tiny_model), method, trained.output_dir, CPU32, merge=False)
    merged, _ = load_model(trained.merged_dir, CPU32)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "refund my card"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        a, b = unmerged(ids).logits, merged(ids).logits
    if method == "qlora":
        # The merged model holds the exact dequantized 4-bit weights, while bitsandbytes' CPU 4-bit matmul rounds
        # at about bf16 precision (0.4% per layer, measured), a relative error: every label's log-likelihood within
        # 0.05 + 1% of itself (unlikely labels near -30 differ by up to 0.13 on some CPUs, the likely one by 1e-4),
        # the same label first, and nearly the same loss. Dropping or doubling the adapter moves them by whole nats.
        prompts = [prompt_messages(e, "Classify.") for e in read_examples(val)]
        scores = [label_logprobs(m, tokenizer, prompts, LABELS) for m in (unmerged, merged)]
        assert np.allclose(scores[0], scores[1], rtol=0.01, atol=0.05), scores
        assert (np.argmax(scores[0], axis=1) == np.argmax(scores[1], axis=1)).all()
        losses = [_validation_loss(m, tokenizer, val) for m in (unmerged, merged)]
        assert losses[1] == pytest.approx(losses[0], rel=0.1, abs=0.02)
    else:
        # Folding the adapter into the weights reorders the same float operations: logits of about 10 agree to
        # about 1e-5; a merge that lost the adapter changes them by whole units.
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-3)


def test_assistant_only_loss_masks_every_other_role(tiny_model):
    tokenizer = load_tokenizer(str(tiny_model))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "billing"},
        {"role": "user", "content": "and?"},
        {"role": "assistant", "content": "general"},
    ]
    row = tokenize_conversation(tokenizer, messages)
    kept = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100])
    assert "billing" in kept and "general" in kept and "hi" not in kept and "Be brief" not in kept
    assert tokenize_conversation(tokenizer, messages, loss_on="all")["labels"] == row["input_ids"]


def test_a_diverging_run_stops_naming_the_step_and_the_fix(tmp_path, tiny_model):
    from tunesmith.training.guards import TrainingDiverged

    train, val = _memorisable_set(tmp_path)
    with pytest.raises(TrainingDiverged, match=r"(?s)at step \d+\n.*fix: lower training.learning_rate \(now 1e\+30"):
        train_files(
            str(tiny_model),
            str(train),
            str(val),
            "Classify.",
            _fast("full", learning_rate=1e30),
            "full",
            CPU32,
            tmp_path / "out",
        )


def test_early_stopping_keeps_the_best_checkpoint(tmp_path, tiny_model):
    train, val = _memorisable_set(tmp_path)
    config = _fast("full", steps=60, learning_rate=3e-2, eval_steps=4, early_stopping_patience=2)
    trained = train_files(str(tiny_model), str(train), str(val), "Classify.", config, "full", CPU32, tmp_path / "out")
    evals = [h["eval_loss"] for h in trained.history if "eval_loss" in h]
    assert trained.metrics["best_eval_loss"] == pytest.approx(min(evals))
    model, tokenizer = load_trained(str(tiny_model), "full", trained.output_dir, CPU32)
    # The same float-rounding margin as after every method's reload; the best and the last evaluations differed
    # by 0.0075 to 0.31 over four training seeds, far more than the margin.
    assert _validation_loss(model, tokenizer, val) == pytest.approx(min(evals), rel=1e-3, abs=1e-4)


def long_inputs(tmp_path, tiny_model, n: int, words: int):
    """The tiny model with its config asking for eager attention, as some checkpoints do (attention scores are
    then one batch x heads x length x length tensor), and n examples of about 1.6 tokens per word."""
    model = tmp_path / "eager"
    shutil.copytree(tiny_model, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"attn_implementation": "eager"}))
    vocabulary = ["refund", "card", "charged", "twice", "site", "down", "login", "error", "invoice", "office", "hours"]
    rng = random.Random(0)
    examples = [
        make_example([{"role": "user", "content": " ".join(rng.choices(vocabulary, k=words))},
                      {"role": "assistant", "content": label}], f"long:{i}", label)
        for i, label in enumerate((LABELS * n)[:n])
    ]  # fmt: skip
    return model, write_examples(examples, tmp_path / "long.jsonl")


# A machine with 2 GB left: the process may grow 2 GB beyond what it holds once loaded (RLIMIT_AS). One step on
# 8 sequences of about 4,100 tokens needs 2.15 GB for the attention scores alone, so the CPU allocator refuses
# an allocation mid-step, as it does on a machine whose memory is spent; nothing else in the test process is
# limited, and no machine is driven out of memory.
SMALL_MACHINE = """
import json, resource, sys
from pathlib import Path
import psutil
from tunesmith.errors import NotEnoughMemory
from tunesmith.training.sft import train_files
from tests.test_training import CPU32, _fast, long_inputs

tmp, tiny = Path(sys.argv[1]), Path(sys.argv[2])
model, train = long_inputs(tmp, tiny, 8, 2500)
limit = psutil.Process().memory_info().vms + 2 * 2**30
resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
config = _fast("lora", steps=2, batch_size=8, max_seq_length=8192)
try:
    train_files(str(model), str(train), str(train), "Classify.", config, "lora", CPU32, tmp / "out")
    print(json.dumps({"trained": True}))
except NotEnoughMemory as err:
    print(json.dumps({"problem": err.problem, "where": err.where, "fix": err.fix}))
"""


def test_running_out_of_memory_mid_training_says_what_to_change(tmp_path, tiny_model):
    done = subprocess.run([sys.executable, "-c", SMALL_MACHINE, str(tmp_path), str(tiny_model)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    error = json.loads(done.stdout.strip().splitlines()[-1])
    assert error["problem"].startswith("CPU out of memory during training step 1 of 2 (lora, batch 8"), error
    assert "can't allocate memory" in error["problem"]
    assert "lower training.batch_size" in error["fix"] and "gradient_checkpointing" in error["fix"]
