"""Packed micro-batches (training.tokens_per_batch): the same loss and gradients as padded batches of the same
examples, no attention across the examples a row packs, and the plan that sizes the budget."""

import math
import random

import pytest
import torch

from tests.test_training import CPU32, _fast, _memorisable_set
from tunesmith.config.schema import TrainingConfig
from tunesmith.errors import UsageError
from tunesmith.models.load import load_tokenizer
from tunesmith.training.distributed.spec import TrainingSpec
from tunesmith.training.plan import PlanContext, plan_training
from tunesmith.training.sft import build_trainer, train_files, training_rows


def _trainer(tmp_path, tiny_model, method: str, precision=CPU32, **settings):
    train, val = _memorisable_set(tmp_path)
    config = _fast(method, steps=4, **settings)
    spec = TrainingSpec.for_files(str(tiny_model), str(train), str(val), "Classify.", config, method, precision,
                                  tmp_path / "out")  # fmt: skip
    plan = spec.training_plan()
    tokenizer = load_tokenizer(str(tiny_model))
    rows = training_rows(spec.train_path, tokenizer, spec.system, plan.settings)
    return build_trainer(spec, plan, tokenizer, rows, None, tmp_path / "checkpoints"), tokenizer


def _unpacked(batch: dict) -> list[dict]:
    """The examples of a packed row, cut where the position ids restart."""
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    ends = starts[1:] + [batch["position_ids"].shape[1]]
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    return [{"input_ids": ids[a:b].tolist(), "labels": labels[a:b].tolist()} for a, b in zip(starts, ends, strict=True)]


def _loss_and_grads(model, batch: dict) -> tuple[float, list[torch.Tensor]]:
    batch = {k: v.to(model.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    model.zero_grad()
    loss = model(**batch, use_cache=False).loss  # as the trainer calls it: a cache would turn off the document mask
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]


def packed_and_padded(tmp_path, tiny_model, precision=CPU32, rel: float = 1e-4) -> None:
    """The first micro-batch the trainer reads, against its examples as one padded batch through the same model."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    # No dropout: its random masks follow the batch's shape.
    trainer, tokenizer = _trainer(tmp_path, tiny_model, "lora", precision, tokens_per_batch=160,
                                  lora={"dropout": 0.0})  # fmt: skip
    packed = next(iter(trainer.get_train_dataloader()))
    examples = _unpacked(packed)
    assert packed["input_ids"].shape == (1, sum(len(e["input_ids"]) for e in examples))
    assert len(examples) >= 3 and packed["input_ids"].shape[1] <= 160
    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(examples)
    assert padded["attention_mask"].sum() == packed["input_ids"].shape[1] < padded["attention_mask"].numel()
    model = trainer.model.train()
    packed_loss, packed_grads = _loss_and_grads(model, packed)
    padded_loss, padded_grads = _loss_and_grads(model, padded)
    assert packed_loss == pytest.approx(padded_loss, rel=rel)
    assert len(packed_grads) == len(padded_grads) > 0
    for a, b in zip(packed_grads, padded_grads, strict=True):
        assert float((a - b).norm()) <= rel * float(b.norm()) + 1e-9


def test_a_packed_row_gives_the_loss_and_gradients_of_the_same_examples_padded(tmp_path, tiny_model):
    """Equal up to fp32 reassociation (1e-4 relative; attending across examples, or a label lost at a boundary,
    moves the loss by whole percents). On a GPU, with its kernel and bf16: tests/test_cuda.py."""
    packed_and_padded(tmp_path, tiny_model)


def _copy_pairs(rng: random.Random, answers: list[int], n: int) -> list[dict]:
    """Pairs of examples packed side by side: the second's answer is the last token of the first, and nothing in
    the second tells which of `answers` it is."""
    rows = []
    for _ in range(n):
        secret = rng.choice(answers)
        rows.append({"input_ids": [rng.randrange(200, 500) for _ in range(5)] + [secret], "labels": [-100] * 6})
        rows.append({"input_ids": [10, secret], "labels": [-100, secret]})
    return rows


def _answer_loss(tmp_path, tiny_model, packed: bool, steps: int = 400) -> float:
    """Mean loss on the second examples' answers over the last 20 of `steps` steps of full fine-tuning, each step
    through the trainer's own loss on rows its packing collator made; `packed=False` numbers the positions straight
    through, as if each pair were one example."""
    trainer, _ = _trainer(tmp_path / f"packed-{packed}", tiny_model, "full", tokens_per_batch=256)
    assert trainer.args.packing and trainer.args.per_device_train_batch_size == 1
    torch.manual_seed(0)
    model = trainer.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng, answers, losses = random.Random(0), list(range(100, 108)), []
    for _ in range(steps):
        batch = trainer.data_collator(_copy_pairs(rng, answers, 16))
        if not packed:
            batch = {"input_ids": batch["input_ids"], "labels": batch["labels"],
                     "position_ids": torch.arange(batch["input_ids"].shape[1])[None]}  # fmt: skip
        loss = trainer.compute_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses[-20:]) / 20


def test_an_example_cannot_learn_from_the_example_packed_before_it(tmp_path, tiny_model):
    """Guessing among 8 answers costs ln 8 = 2.08 nats. Numbered straight through, the model learns to copy the
    token before it (measured 0.02-0.72 after 400 steps over four model seeds); packed, it cannot see it and stays at
    chance (2.12-2.13)."""
    chance = math.log(8)
    assert _answer_loss(tmp_path, tiny_model, packed=True) > 0.95 * chance
    assert _answer_loss(tmp_path, tiny_model, packed=False) < 0.5 * chance


def test_packed_training_counts_its_steps_from_the_packed_rows(tmp_path, tiny_model):
    train, val = _memorisable_set(tmp_path)
    config = _fast("lora", steps=-1, epochs=2, tokens_per_batch=128, eval_steps=None)
    trained = train_files(str(tiny_model), str(train), str(val), "Classify.", config, "lora", CPU32, tmp_path / "o")
    hp = trained.hyperparameters
    assert hp["tokens_per_batch"] == 128 and hp["padding_free"] is True and hp["micro_batches"] >= 3
    steps = math.ceil(hp["micro_batches"] / hp["gradient_accumulation_steps"])
    assert hp["steps_per_epoch"] == steps and hp["total_steps"] == 2 * steps == trained.metrics["steps"]
    per_step = 16 / hp["micro_batches"] * hp["gradient_accumulation_steps"]  # 16 training examples
    assert hp["effective_batch_size"] == round(per_step)


def _context(device: str, **overrides) -> PlanContext:
    settings = dict(model_path="", n_train=1000, max_seq_length=512, mean_tokens=100.0, hidden=2048,
                    dtype="bfloat16" if device == "cuda" else "float32", device=device)  # fmt: skip
    return PlanContext(**(settings | overrides))


def test_auto_packs_on_a_gpu_only_and_keeps_the_effective_batch():
    cpu = plan_training(TrainingConfig(), "lora", _context("cpu"))
    assert cpu.settings.tokens_per_batch == "off" and "tokens_per_step" not in cpu.schedule
    # batch 8 x accumulation 4 at 100 tokens: a step holds about 3,200 tokens, one micro-batch of 4,096
    gpu = plan_training(TrainingConfig(gradient_accumulation_steps=4), "lora", _context("cuda"))
    assert gpu.settings.tokens_per_batch == 4096 and gpu.settings.gradient_accumulation_steps == 1
    assert gpu.schedule["steps_per_epoch"] == math.ceil(1000 * 100 / 4096)
    assert "memory plan" in gpu.sources["tokens_per_batch"]
    # a set budget: accumulation holds the step's tokens in micro-batches of it
    set_budget = plan_training(TrainingConfig(gradient_accumulation_steps=4, tokens_per_batch=1024), "lora",
                               _context("cuda"))  # fmt: skip
    assert (set_budget.settings.tokens_per_batch, set_budget.settings.gradient_accumulation_steps) == (1024, 3)


def test_auto_shrinks_the_budget_to_fit_memory(tiny_model):
    """A budget the estimate says does not fit gives way to the largest power of two that does, down to the
    longest example; checkpointing only when none fits without it."""
    from tunesmith.decision.memory import estimate, workload_for

    context = _context("cuda", model_path=str(tiny_model), max_seq_length=256, mean_tokens=200.0)
    roomy = plan_training(TrainingConfig(gradient_accumulation_steps=8), "full", context)
    assert roomy.settings.tokens_per_batch == 16384  # 8 x 8 x 200 = 12,800 tokens a step
    needed = {
        budget: estimate("full", _shape(tiny_model), workload_for(
            TrainingConfig(tokens_per_batch=budget), "bfloat16", 0, True)).total_gb
        for budget in (16384, 8192, 4096)
    }  # fmt: skip
    tight = _context("cuda", model_path=str(tiny_model), max_seq_length=256, mean_tokens=200.0,
                     budget_gb=(needed[8192] + needed[4096]) / 2, budget_source="test")  # fmt: skip
    plan = plan_training(TrainingConfig(gradient_accumulation_steps=8), "full", tight)
    assert plan.settings.tokens_per_batch == 4096 and plan.settings.gradient_accumulation_steps == 3
    assert plan.memory["fits"] and plan.memory["packed"] and not plan.settings.gradient_checkpointing


def _shape(path):
    from tunesmith.models.shape import model_shape

    return model_shape(str(path))


@pytest.mark.parametrize(
    "settings, context, words",
    [
        ({"tokens_per_batch": 100}, {}, "shorter than the longest example"),
        ({"tokens_per_batch": 4096, "objective": "dpo"}, {"data_kind": "preference"}, "batches pairs"),
    ],
)
def test_a_budget_that_cannot_pack_is_refused(settings, context, words):
    with pytest.raises(UsageError) as refused:
        plan_training(TrainingConfig(**settings), "lora", _context("cuda", **context))
    assert words in str(refused.value) and refused.value.where == "training.tokens_per_batch"


def test_a_preference_objective_keeps_batches_of_pairs_under_auto():
    plan = plan_training(TrainingConfig(), "lora", _context("cuda", data_kind="preference"))
    assert plan.settings.objective == "dpo" and plan.settings.tokens_per_batch == "off"
