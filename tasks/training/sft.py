"""The training stage: supervised fine-tuning with TRL's SFTTrainer and a PEFT LoRA adapter."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tasks.config.schema import TrainingConfig
from tasks.curation.records import Example, read_examples
from tasks.models.hardware import Precision
from tasks.profiling import measure
from tasks.prompts import prompt_messages


@dataclass
class TrainedModel:
    base_model: str
    adapter_path: str
    method: str
    precision: str
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    loss_curve_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def to_prompt_completion(examples: list[Example], system: str) -> list[dict[str, Any]]:
    """Conversational prompt/completion rows: TRL then computes the loss on the answer tokens only."""
    return [{"prompt": prompt_messages(e, system), "completion": e.messages[-1:]} for e in examples]


def lora_config(config: TrainingConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def sft_config(config: TrainingConfig, precision: Precision, out_dir: Path, has_eval: bool):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out_dir / "checkpoints"),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a fraction of all steps in transformers 5
        weight_decay=config.weight_decay,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_length=config.max_seq_length,
        bf16=precision.dtype == "bfloat16",
        fp16=precision.dtype == "float16",
        use_cpu=precision.device == "cpu",
        logging_steps=config.logging_steps,
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="no",
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=True,
    )


def train_lora(
    base_model: str,
    train_path: str,
    validation_path: str,
    system: str,
    config: TrainingConfig,
    precision: Precision,
    out_dir: Path,
    trust_remote_code: bool = False,
) -> TrainedModel:
    """Train a LoRA adapter on the train split, evaluating loss on the validation split each epoch."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from tasks.models.load import load_tokenizer

    train = Dataset.from_list(to_prompt_completion(read_examples(Path(train_path)), system))
    validation_rows = to_prompt_completion(read_examples(Path(validation_path)), system)
    validation = Dataset.from_list(validation_rows) if validation_rows else None
    tokenizer = load_tokenizer(base_model, trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype="float32", trust_remote_code=trust_remote_code)
    trainer = SFTTrainer(
        model=model,
        args=sft_config(config, precision, out_dir, validation is not None),
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        peft_config=lora_config(config),
    )
    trainable, total = _parameter_counts(trainer.model)
    with measure() as usage:
        output = trainer.train()
    adapter_dir = out_dir / "adapter"
    trainer.save_model(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))

    history = [
        {k: float(v) for k, v in row.items() if k in ("step", "epoch", "loss", "eval_loss", "learning_rate")}
        for row in trainer.state.log_history
        if "loss" in row or "eval_loss" in row
    ]
    train_tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    epochs_done = float(trainer.state.epoch or config.epochs)
    metrics = {
        "train_loss": float(output.training_loss),
        "final_eval_loss": next((h["eval_loss"] for h in reversed(history) if "eval_loss" in h), math.nan),
        "steps": float(trainer.state.global_step),
        "epochs": epochs_done,
        "wall_s": usage.wall_s,
        "peak_rss_mb": usage.peak_rss_mb,
        "tokens_per_s": train_tokens * epochs_done / usage.wall_s if usage.wall_s else 0.0,
        "trainable_params": float(trainable),
        "total_params": float(total),
        "trainable_pct": 100.0 * trainable / total,
    }
    if usage.peak_gpu_mb is not None:
        metrics["peak_gpu_mb"] = usage.peak_gpu_mb
    curve = plot_loss_curve(history, out_dir / "loss_curve.png")
    return TrainedModel(
        base_model=base_model,
        adapter_path=str(adapter_dir),
        method=config.method,
        precision=precision.dtype,
        metrics=metrics,
        history=history,
        loss_curve_path=str(curve),
    )


def _parameter_counts(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
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
