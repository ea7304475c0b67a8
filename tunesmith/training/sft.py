"""The training stage: any objective (supervised, DPO, ORPO, KTO: tunesmith/training/objectives) with its TRL
trainer, for any method in the registry."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunesmith.config.schema import TrainingConfig
from tunesmith.console import progress
from tunesmith.curation.records import read_examples
from tunesmith.errors import NotEnoughMemory
from tunesmith.models.manifest import write_manifest
from tunesmith.profiling import measure, release_memory, settled_rss_mb
from tunesmith.prompts import full_messages
from tunesmith.records import Precision, TrainedModel
from tunesmith.search.pruning import ReportToTrial
from tunesmith.training.anchor import PullTowardStart
from tunesmith.training.distributed.spec import TrainingSpec
from tunesmith.training.distributed.strategies import SHARDED
from tunesmith.training.fast_path import resolve as resolve_fast_path
from tunesmith.training.fast_path import skip_adapter_input_casts
from tunesmith.training.freed_memory import HandBackFreedMemory
from tunesmith.training.guards import StopOnNonFinite
from tunesmith.training.inference import write_merged
from tunesmith.training.methods import METHODS
from tunesmith.training.objectives import OBJECTIVES
from tunesmith.training.plan import TrainingPlan, with_world_size
from tunesmith.training.progress_callback import ReportProgress
from tunesmith.training.tokenize import tokenize_conversation


def trainer_arguments(
    config: TrainingConfig, hp: dict[str, Any], precision: Precision, checkpoints: Path, has_eval: bool
):
    """TRL's config for the plan's objective: the same schedule, precision and saving for every objective."""
    objective = OBJECTIVES[config.objective]
    keep_best = has_eval and hp["save_steps"] % hp["eval_steps"] == 0
    cuda = precision.device == "cuda"
    fast = resolve_fast_path(config, precision)
    optimizer = METHODS[hp["method"]].optimizer(cuda)
    if fast.fused_optimizer and optimizer == "adamw_torch":
        optimizer = "adamw_torch_fused"
    supervised = objective.name == "sft"
    own, micro_batch = _batching(config, fast, objective)
    return objective.arguments()(
        **own,
        output_dir=str(checkpoints),
        num_train_epochs=hp["epochs"],
        max_steps=config.max_steps,
        learning_rate=hp["learning_rate"],
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a fraction of all steps in transformers 5
        weight_decay=hp["weight_decay"],
        per_device_train_batch_size=micro_batch,
        per_device_eval_batch_size=micro_batch,
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        # TRL turns checkpointing on by default; it recomputes the forward pass (about a third more compute).
        # transformers 5 names it activation_checkpointing (the old name still works, with a FutureWarning).
        activation_checkpointing=config.gradient_checkpointing,
        max_length=fast.tokens_per_batch or config.max_seq_length,  # packed: the length of a packed row
        bf16=precision.dtype == "bfloat16",
        fp16=precision.dtype == "float16",
        use_cpu=not cuda,
        optim=optimizer,
        # Liger's kernels and length-grouped batches are wired for supervised rows (TRL's preference trainers
        # batch pairs in their own collators).
        use_liger_kernel=fast.liger and supervised,
        train_sampling_strategy=objective.sampling
        or ("group_by_length" if config.group_by_length and supervised and not fast.tokens_per_batch else "random"),
        torch_compile=fast.compile,
        logging_steps=config.logging_steps,
        logging_nan_inf_filter=False,  # a NaN must reach our guard, not be averaged away
        eval_strategy="steps" if has_eval else "no",
        eval_steps=hp["eval_steps"],
        save_strategy="steps",
        save_steps=hp["save_steps"],
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=keep_best,
        metric_for_best_model="eval_loss" if keep_best else None,
        greater_is_better=False if keep_best else None,
        report_to="none",
        # Every trainable weight of every method takes part in each step: no extra pass to look for unused ones.
        ddp_find_unused_parameters=False,
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=True,
    )


def _batching(config: TrainingConfig, fast, objective) -> tuple[dict[str, Any], int]:
    """The objective's own TRL settings with how batches are made, and the micro-batch in rows: one packed row of
    at most tokens_per_batch tokens (packing.py), or batch_size examples."""
    own: dict[str, Any] = objective.settings(config.preference)
    if "padding_free" not in objective.unsupported:
        own["padding_free"] = fast.padding_free
    if fast.tokens_per_batch:
        return own | {"packing": True, "packing_strategy": "bfd", "eval_packing": True}, 1
    return own, config.batch_size


@contextmanager
def score_labelled_positions_only():
    """Run TRL's fused LM head only on positions that carry a label, on CPUs too.

    TRL 1.16 compacts to the labelled positions only where Triton runs (its comment: on other accelerators
    the changing shapes would trigger recompilation). On a CPU nothing is compiled, and with the loss on the
    assistant's few tokens, projecting every position onto a 49k vocabulary is a fifth of the compute: this
    measured 197 -> 266 tokens/s for LoRA on SmolLM2-135M (benchmarks/training_throughput.py). Same loss.
    """
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:  # a TRL without this switch: keep its behaviour
        yield
        return
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original


def last_checkpoint(checkpoints: Path) -> str | None:
    """The latest complete checkpoint. The Trainer writes trainer_state.json after the weights and the optimizer,
    so one that parses marks a finished save; a run killed while saving leaves it empty or cut short."""
    found = [p for p in checkpoints.glob("checkpoint-*") if _complete(p / "trainer_state.json")]
    return str(max(found, key=lambda p: int(p.name.split("-")[1]))) if found else None


def _complete(state: Path) -> bool:
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def training_rows(path: str, tokenizer, system: str, config: TrainingConfig):
    """The split as the objective's trainer reads it: supervised rows tokenized here (the loss on the assistant's
    turns), preference rows in TRL's conversational form (its trainers apply the chat template)."""
    from datasets import Dataset

    examples = read_examples(Path(path))
    objective = OBJECTIVES[config.objective]
    if objective.rows is not None:
        rows = objective.rows(examples, system)
    else:
        rows = [
            tokenize_conversation(tokenizer, full_messages(e, system), config.loss_on, config.max_seq_length)
            for e in examples
        ]
    return Dataset.from_list(rows) if rows else None


def train_model(spec: TrainingSpec, ranks_dir: Path | None = None) -> TrainedModel:
    """Train as the spec's plan says; resumes from the spec's checkpoint folder when an earlier attempt left
    checkpoints.

    Under a distributed launch (tunesmith/training/distributed) every rank runs this; each writes its own report
    to ranks_dir, and rank 0 alone saves the model, its manifest and the loss curve."""
    from tunesmith.models.load import load_tokenizer

    plan = with_world_size(spec.training_plan(), int(os.environ.get("WORLD_SIZE", "1")))
    tokenizer = load_tokenizer(spec.base_model, spec.trust_remote_code)
    train = training_rows(spec.train_path, tokenizer, spec.system, plan.settings)
    validation = training_rows(spec.validation_path, tokenizer, spec.system, plan.settings)
    checkpoints = Path(spec.checkpoint_dir) if spec.checkpoint_dir else Path(spec.out_dir) / "checkpoints"
    idle_rss_mb = settled_rss_mb()
    trainer = build_trainer(spec, plan, tokenizer, train, validation, checkpoints)
    hp = plan.hyperparameters() | {"optimizer": getattr(trainer.args.optim, "value", trainer.args.optim)}
    hp |= resolve_fast_path(plan.settings, spec.precision_record()).params()
    hp |= OBJECTIVES[plan.settings.objective].settings(plan.settings.preference)  # beta, for the report
    if hp["tokens_per_batch"] is not None:  # the fast path's: an int when packed
        hp |= packed_schedule(len(trainer.train_dataset), len(train), plan)
    tokens_per_step = _tokens(train, tokenizer) / hp["steps_per_epoch"]
    output, usage, resumed_step = _run(trainer, plan, hp, spec.precision_record(), checkpoints, tokens_per_step)
    if ranks_dir is not None:
        write_rank_report(trainer, ranks_dir, trainer.data_collator.tokens, usage.wall_s)
    model_dir = _save(trainer, spec, plan, tokenizer, hp)
    if not trainer.is_world_process_zero():
        return TrainedModel(spec.base_model, str(model_dir), plan.method, spec.precision["dtype"], hp, {}, [], None,
                            METHODS[plan.method].can_merge)  # fmt: skip
    history = _history(trainer)
    metrics = _metrics(trainer, output, usage, history, hp, resumed_step, tokens_per_step, idle_rss_mb)
    if ranks_dir is not None:
        metrics |= rank_metrics(ranks_dir)
    if spec.checkpoint_dir is not None:
        shutil.rmtree(spec.checkpoint_dir, ignore_errors=True)  # finished: nothing left to resume
    module = METHODS[plan.method]
    merged_dir = None
    if plan.settings.merge and module.can_merge:
        merged_dir = write_merged(spec.base_model, plan.method, str(model_dir), Path(spec.out_dir) / "merged",
                                  spec.trust_remote_code)  # fmt: skip
    trained = TrainedModel(
        base_model=spec.base_model,
        output_dir=str(model_dir),
        method=plan.method,
        precision=spec.precision["dtype"],
        hyperparameters=hp,
        metrics=metrics,
        history=history,
        loss_curve_path=str(plot_loss_curve(history, Path(spec.out_dir) / "loss_curve.png")),
        can_merge=module.can_merge,
        merged_dir=merged_dir,
    )
    # The pipeline evaluates in this process next: without this it kept a DPO training's 14 GB of freed
    # activations and logits, and its evaluation went out of memory on a 23 GB machine.
    del trainer
    release_memory()
    return trained


def train_files(
    base_model: str, train_path: str, validation_path: str, system: str, training: TrainingConfig, method: str,
    precision: Precision, out_dir: str | Path, **job: Any,
) -> TrainedModel:  # fmt: skip
    """train_model on two files outside a pipeline run (benchmarks, notebooks): see TrainingSpec.for_files."""
    spec = TrainingSpec.for_files(
        base_model, train_path, validation_path, system, training, method, precision, out_dir, **job
    )
    return train_model(spec)


def packed_schedule(micro_batches: int, rows: int, plan: TrainingPlan) -> dict[str, int]:
    """Steps and the effective batch as the trainer counts them over the packed micro-batches (the plan's are
    estimates made before packing): each process reads its share, and an epoch's last step takes what is left."""
    settings, world = plan.settings, plan.schedule["world_size"]
    per_epoch = max(1, math.ceil(math.ceil(micro_batches / world) / settings.gradient_accumulation_steps))
    total = settings.max_steps if settings.max_steps > 0 else math.ceil(settings.epochs * per_epoch)
    examples_per_step = rows / micro_batches * settings.gradient_accumulation_steps * world
    return {"micro_batches": micro_batches, "steps_per_epoch": per_epoch, "total_steps": total,
            "effective_batch_size": max(1, round(examples_per_step))}  # fmt: skip


def _tokens(rows, tokenizer) -> int:
    """Tokens in one pass over the rows: tokenized supervised rows as they are, preference rows as the chat template
    renders each side (a pair reads its prompt twice, once with each reply)."""
    if "input_ids" in rows.column_names:
        return sum(len(ids) for ids in rows["input_ids"])

    def length(messages: list[dict[str, str]]) -> int:
        return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])

    replies = ("chosen", "rejected") if "chosen" in rows.column_names else ("completion",)
    return sum(length(row["prompt"] + row[side]) for row in rows for side in replies)


def build_trainer(spec: TrainingSpec, plan: TrainingPlan, tokenizer, train, validation, checkpoints: Path):
    """The objective's TRL trainer on the plan's method and settings, counting the tokens it trains on."""
    from transformers import EarlyStoppingCallback, set_seed

    config, hp, precision = plan.settings, plan.hyperparameters(), spec.precision_record()
    args = trainer_arguments(config, hp, precision, checkpoints, validation is not None)
    callbacks = [StopOnNonFinite(hp["learning_rate"])]
    if precision.device == "cpu":
        callbacks.append(HandBackFreedMemory())
    if args.load_best_model_at_end and config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    if spec.trial and plan.schedule["world_size"] == 1:  # a search trial in one process: its pruner sees every loss
        callbacks.append(ReportToTrial(spec.trial))
    # The trainer seeds itself only after the model exists; adapters (LoRA's A matrices, bottlenecks, prompts)
    # are initialised while it is built, so seed here too: the same config gives the same run, whatever ran
    # before in this process (another method of a comparison, an earlier retrain).
    set_seed(config.seed)
    model = _build(spec, plan, config, precision)
    skip_adapter_input_casts(model, precision)
    if config.l2_to_base:
        callbacks.append(PullTowardStart(model, config.l2_to_base))
    trainer = OBJECTIVES[config.objective].trainer()(
        model=model, args=args, train_dataset=train, eval_dataset=validation, processing_class=tokenizer,
        callbacks=callbacks,
    )  # fmt: skip
    count_training_tokens(trainer)
    return trainer


def _build(spec: TrainingSpec, plan: TrainingPlan, config: TrainingConfig, precision: Precision):
    """The method's trainable model; continuing `spec.start_from` when set: an adapter's trained weights loaded
    into the new adapter, or a whole trained model as the base to train on."""
    method = METHODS[plan.method]
    whole = spec.start_from if spec.start_from and not method.peft_adapter else spec.base_model
    model = method.build(whole, config, precision, spec.trust_remote_code)
    if spec.start_from and method.peft_adapter:
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        set_peft_model_state_dict(model, load_peft_weights(spec.start_from))
    return model


def _run(trainer, plan: TrainingPlan, hp: dict[str, Any], precision: Precision, checkpoints: Path,
         tokens_per_step: float):  # fmt: skip
    """Train (from the last checkpoint when one is left); (output, resource usage, the step resumed from)."""
    resume = last_checkpoint(checkpoints) if plan.settings.resume else None
    resumed_step = int(resume.rsplit("-", 1)[1]) if resume else 0
    with progress.bar("step", hp["total_steps"]) as bar:
        trainer.add_callback(ReportProgress(bar, tokens_per_step))
        try:
            with measure() as usage, score_labelled_positions_only():
                output = trainer.train(resume_from_checkpoint=resume)
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            raise out_of_memory(err, trainer.state.global_step, hp, precision) from err
    return output, usage, resumed_step


def _save(trainer, spec: TrainingSpec, plan: TrainingPlan, tokenizer, hp: dict[str, Any]) -> Path:
    """The trained weights (gathered from every rank when sharded), the tokenizer and the manifest."""
    model_dir = Path(spec.out_dir) / "model"
    main = trainer.is_world_process_zero()
    if plan.settings.distributed.strategy in SHARDED:
        trainer.save_model(str(model_dir))  # every rank takes part: the shards are gathered into one model
    elif main:
        METHODS[plan.method].save(trainer.model, model_dir)
    trainer.accelerator.wait_for_everyone()
    if main:
        tokenizer.save_pretrained(str(model_dir))
        details = {"method": plan.method, "base_model": spec.base_model, "system": spec.system,
                   "hyperparameters": hp, "training": plan.training, "plan_sources": plan.sources}  # fmt: skip
        write_manifest(model_dir, details | spec.manifest)
    return model_dir


def _history(trainer) -> list[dict[str, float]]:
    return [
        {k: float(v) for k, v in row.items() if k in ("step", "epoch", "loss", "eval_loss", "learning_rate")}
        for row in trainer.state.log_history
        if "loss" in row or "eval_loss" in row
    ]


def _metrics(
    trainer, output, usage, history, hp, resumed_step: int, tokens_per_step: float, idle_rss_mb: float
) -> dict[str, float]:
    """What the training cost and reached: losses, steps, time, memory, throughput, parameters."""
    state = trainer.state
    eval_time = sum(row.get("eval_runtime", 0.0) for row in state.log_history)
    train_time = max(usage.wall_s - eval_time, 1e-9)
    trainable, total = parameter_counts(trainer.model)
    metrics = {
        "train_loss": float(output.training_loss),
        "final_eval_loss": next((h["eval_loss"] for h in reversed(history) if "eval_loss" in h), math.nan),
        "best_eval_loss": float(state.best_metric) if state.best_metric is not None else math.nan,
        "steps": float(state.global_step),
        "resumed_from_step": float(resumed_step),
        "epochs": float(state.epoch or 0.0),
        "wall_s": usage.wall_s,
        "eval_s": eval_time,
        "peak_rss_mb": usage.peak_rss_mb,
        # the model, gradients, optimizer and activations: what this training added to the process
        "peak_rss_above_idle_mb": usage.peak_rss_mb - idle_rss_mb,
        "tokens_per_s": (state.global_step - resumed_step) * tokens_per_step / train_time,
        "trainable_params": float(trainable),
        "total_params": float(total),
        "trainable_pct": 100.0 * trainable / total,
        "early_stopped": float(state.global_step < hp["total_steps"]),
    }
    if usage.peak_gpu_mb is not None:
        metrics["peak_gpu_mb"] = usage.peak_gpu_mb
    return metrics


class TokenCounter:
    """Wraps the trainer's collator to count the real (unpadded) tokens this process trains on."""

    def __init__(self, collate):
        self.collate, self.tokens, self.counting = collate, 0, True

    def __call__(self, features):
        batch = self.collate(features)
        if self.counting:
            # Every sequence the step reads: a preference batch holds each side (and KTO's mismatched KL rows).
            masks = [v for k, v in batch.items() if k.endswith("attention_mask") and not k.startswith("prompt_")]
            self.tokens += sum(int(m.sum()) for m in masks) if masks else int(batch["input_ids"].numel())
        return batch


def count_training_tokens(trainer) -> TokenCounter:
    """Count the tokens of training batches only: evaluation batches go through the same collator."""
    counter = TokenCounter(trainer.data_collator)
    trainer.data_collator = counter
    evaluate = trainer.evaluate

    def evaluate_uncounted(*args, **kwargs):
        counter.counting = False
        try:
            return evaluate(*args, **kwargs)
        finally:
            counter.counting = True

    trainer.evaluate = evaluate_uncounted
    return counter


def weights_digest(model) -> str | None:
    """A hash of the trainable weights: equal on every rank of a data-parallel job that stayed in step. FSDP2's
    sharded weights are gathered for it (every rank takes part); ZeRO-3's partitions are not hashed (None)."""
    import torch

    named = sorted(((n, p) for n, p in model.named_parameters() if p.requires_grad), key=lambda item: item[0])
    if any(hasattr(p, "ds_id") for _, p in named):
        return None
    digest = hashlib.sha256()
    for name, parameter in named:
        tensor = parameter.detach()
        if hasattr(tensor, "full_tensor"):  # a DTensor shard
            tensor = tensor.full_tensor()
        digest.update(name.encode())
        digest.update(tensor.to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_rank_report(trainer, ranks_dir: Path, tokens: int, wall_s: float) -> None:
    """This rank's view of the job: who it was, what it trained on, how fast, and where its weights ended."""
    state = trainer.accelerator.state
    eval_s = sum(row.get("eval_runtime", 0.0) for row in trainer.state.log_history)
    report = {
        "rank": state.process_index,
        "local_rank": state.local_process_index,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "num_processes": trainer.accelerator.num_processes,
        "distributed_type": str(state.distributed_type),
        "device": str(trainer.accelerator.device),
        "steps": trainer.state.global_step,
        "tokens": tokens,
        "train_s": max(wall_s - eval_s, 1e-9),
        "tokens_per_s": tokens / max(wall_s - eval_s, 1e-9),
        "weights_sha256": weights_digest(trainer.model),
    }
    ranks_dir.mkdir(parents=True, exist_ok=True)
    (ranks_dir / f"rank-{report['rank']}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")


def rank_metrics(ranks_dir: Path) -> dict[str, float]:
    """Each rank's throughput as rank<i>_tokens_per_s, and how many ranks reported."""
    reports = [json.loads(p.read_text()) for p in sorted(ranks_dir.glob("rank-*.json"))]
    metrics = {f"rank{r['rank']}_tokens_per_s": float(r["tokens_per_s"]) for r in reports}
    world = max((r["world_size"] for r in reports), default=1)
    return metrics | {"ranks": float(len(reports)), "world_size": float(world)}


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator refusing a request (a RuntimeError from PyTorch)."""
    import torch

    text = str(error).lower()
    return (
        isinstance(error, (torch.OutOfMemoryError, MemoryError))
        or "can't allocate memory" in text
        or "out of memory" in text
    )


def out_of_memory(error: BaseException, step: int, hp: dict[str, Any], precision: Precision) -> NotEnoughMemory:
    device = "GPU" if precision.device == "cuda" else "CPU"
    detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return NotEnoughMemory(
        f"{device} out of memory during training step {step + 1} of {hp['total_steps']} ({hp['method']}, batch "
        f"{hp['batch_size']}, max_seq_length {hp['max_seq_length']}): {detail}",
        "training.batch_size, training.max_seq_length, training.method",
        "lower training.batch_size (set training.effective_batch_size to keep the effective batch) or "
        "training.max_seq_length, turn on training.gradient_checkpointing, or use lora or qlora",
    )


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters; 4-bit packed weights count as the parameters they encode."""
    trainable = total = 0
    for parameter in model.parameters():
        n = getattr(parameter, "ds_numel", None) or parameter.numel()  # ZeRO-3 partitions report 0 elements
        if parameter.__class__.__name__ == "Params4bit":
            n *= 2  # two 4-bit values per stored byte
        total += n
        if parameter.requires_grad:
            trainable += n
    return trainable, total


def plot_loss_curve(history: list[dict[str, float]], path: Path) -> Path:
    """PNG of training loss per step and validation loss per evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
