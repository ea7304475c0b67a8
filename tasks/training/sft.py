"""The training stage: supervised fine-tuning with TRL's SFTTrainer, for any method in the registry."""

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
from tasks.training.methods import METHODS


@dataclass
class TrainedModel:
    base_model: str
    output_dir: str  # adapter weights, or a whole model for full/spectrum
    method: str
    precision: str
    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    loss_curve_path: str | None = None
    can_merge: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def to_prompt_completion(examples: list[Example], system: str) -> list[dict[str, Any]]:
    """Conversational prompt/completion rows: TRL then computes the loss on the answer tokens only."""
    return [{"prompt": prompt_messages(e, system), "completion": e.messages[-1:]} for e in examples]


def hyperparameters(config: TrainingConfig, method: str) -> dict[str, Any]:
    """The method's defaults, overridden by whatever the config sets explicitly."""
    defaults = METHODS[method].DEFAULTS
    return {
        "method": method,
        "learning_rate": config.learning_rate or defaults.learning_rate,
        "epochs": config.epochs or defaults.epochs,
        "weight_decay": defaults.weight_decay if config.weight_decay is None else config.weight_decay,
        "batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "effective_batch_size": config.batch_size * config.gradient_accumulation_steps,
        "lr_scheduler": config.lr_scheduler,
        "warmup_ratio": config.warmup_ratio,
        "max_steps": config.max_steps,
        "max_seq_length": config.max_seq_length,
    }


def sft_config(config: TrainingConfig, hp: dict[str, Any], precision: Precision, out_dir: Path, has_eval: bool):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out_dir / "checkpoints"),
        num_train_epochs=hp["epochs"],
        max_steps=config.max_steps,
        learning_rate=hp["learning_rate"],
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a fraction of all steps in transformers 5
        weight_decay=hp["weight_decay"],
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        gradient_checkpointing=config.gradient_checkpointing,
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


def train_model(
    base_model: str,
    train_path: str,
    validation_path: str,
    system: str,
    config: TrainingConfig,
    method: str,
    precision: Precision,
    out_dir: Path,
    trust_remote_code: bool = False,
) -> TrainedModel:
    """Fine-tune with the given method, evaluating loss on the validation split each epoch."""
    from datasets import Dataset
    from trl import SFTTrainer

    from tasks.models.load import load_tokenizer

    module = METHODS[method]
    hp = hyperparameters(config, method)
    train = Dataset.from_list(to_prompt_completion(read_examples(Path(train_path)), system))
    validation_rows = to_prompt_completion(read_examples(Path(validation_path)), system)
    validation = Dataset.from_list(validation_rows) if validation_rows else None
    tokenizer = load_tokenizer(base_model, trust_remote_code)
    model = module.build(base_model, config, precision, trust_remote_code)
    trainer = SFTTrainer(
        model=model,
        args=sft_config(config, hp, precision, out_dir, validation is not None),
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
    )
    trainable, total = parameter_counts(trainer.model)
    with measure() as usage:
        output = trainer.train()
    model_dir = out_dir / "model"
    module.save(trainer.model, model_dir)
    tokenizer.save_pretrained(str(model_dir))

    history = [
        {k: float(v) for k, v in row.items() if k in ("step", "epoch", "loss", "eval_loss", "learning_rate")}
        for row in trainer.state.log_history
        if "loss" in row or "eval_loss" in row
    ]
    train_tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    epochs_done = float(trainer.state.epoch or hp["epochs"])
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
    return TrainedModel(
        base_model=base_model,
        output_dir=str(model_dir),
        method=method,
        precision=precision.dtype,
        hyperparameters=hp,
        metrics=metrics,
        history=history,
        loss_curve_path=str(plot_loss_curve(history, out_dir / "loss_curve.png")),
        can_merge=module.CAN_MERGE,
    )


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters; 4-bit packed weights count as the parameters they encode."""
    trainable = total = 0
    for parameter in model.parameters():
        n = parameter.numel()
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
