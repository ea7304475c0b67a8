"""What a training method is: one record that says how to build, save, load and merge it, what it costs in
memory and what it needs from the trainer; plus the save/load helpers the methods share."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tunesmith.models.manifest import read_manifest
from tunesmith.models.shape import ModelShape
from tunesmith.records import Precision
from tunesmith.search.space import Dimension


class Settings(BaseModel):
    """A method's own settings section (training.<settings_key>); unknown keys fail like everywhere else."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


@dataclass(frozen=True)
class MethodDefaults:
    """Hyperparameters from established practice; every one can be overridden in training.*

    With `width_exponent`, `learning_rate` is the rate for a model of hidden width `reference_width` and the
    default for another model is scaled by (reference_width / hidden) ** width_exponent: wider models want lower
    rates (see learning_rate_for)."""

    learning_rate: float
    epochs: float = 3.0  # for data of ordinary size: see epochs_for
    weight_decay: float = 0.0
    width_exponent: float = 0.0
    reference_width: int = 2000

    def epochs_for(self, n_train: int) -> float:
        """The default number of passes over n_train examples: `epochs`, unless training would then see fewer than
        MIN_EXAMPLES_SEEN examples (small sets get more passes) or more than MAX_EXAMPLES_SEEN (large sets fewer,
        at least one)."""
        if n_train <= 0:
            return self.epochs
        if n_train * self.epochs < MIN_EXAMPLES_SEEN:
            return float(min(MAX_DEFAULT_EPOCHS, math.ceil(MIN_EXAMPLES_SEEN / n_train)))
        if n_train * self.epochs > MAX_EXAMPLES_SEEN:
            return float(max(1, MAX_EXAMPLES_SEEN // n_train))
        return self.epochs

    def learning_rate_for(self, hidden: int | None) -> float:
        """The default learning rate for a model of this hidden width (the plain default when it is unknown)."""
        if not hidden or not self.width_exponent:
            return self.learning_rate
        return float(f"{self.learning_rate * (self.reference_width / hidden) ** self.width_exponent:.3g}")


# The default length of a training by the data's size, as OpenAI's fine-tuning API sizes its default (its chat
# fine-tuning data-preparation cookbook: 3 epochs, moved so that training sees 100 to 25,000 examples, 1 to 25
# epochs). Measured here: on the banking77 slice (158 training examples) 2 epochs (40 steps at batch 8) left LoRA
# at 84% of full fine-tuning's accuracy and 3 epochs at 97%; the full banking77 (8,864 examples) gets 2 epochs and
# reached 0.914 with LoRA (benchmarks/banking77_full.py).
MIN_EXAMPLES_SEEN = 100
MAX_EXAMPLES_SEEN = 25_000
MAX_DEFAULT_EPOCHS = 25

# Thinking Machines' fit of the best supervised fine-tuning rate across Llama models ("LoRA Without Regret", 2025;
# tinker-cookbook's hyperparam_utils.get_lr): 5e-5 x (2000 / hidden) ** 0.781 for full fine-tuning, 10x that for
# LoRA on every layer. SmolLM2-135M (hidden 576): 1.3e-3 for LoRA, measured here the best of 2e-4/1e-3 on the
# banking77 slice (benchmarks/method_comparison.py); Llama-3.2-1B 4.9e-4, Llama-3.1-8B 2.9e-4, 70B 1.7e-4.
# Qwen's rates fall more slowly with width (their exponent is 0.0775): this gives them a rate on the low side.
LLAMA_WIDTH_EXPONENT = 0.781


def _nothing(*_: Any) -> float:
    return 0


@dataclass(frozen=True)
class TrainingMethod:
    """Everything about one training method. `training` below is the run's TrainingConfig: a method reads its own
    settings (and those it shares, as DoRA reads training.lora) from it, in build and in its memory figures."""

    name: str
    defaults: MethodDefaults
    build: Callable[..., Any]  # (base, training, precision, trust_remote_code) -> the trainable model
    save: Callable[[Any, Path], None]
    load: Callable[..., Any]  # (base, trained_dir, precision, trust_remote_code) -> a model for inference
    # (shape, training) -> parameters that train
    trainable_params: Callable[[ModelShape, Any], int]
    merged: Callable[..., Any] | None = None  # a plain model with the update folded in; None: cannot merge
    settings_key: str | None = None  # training.<key>: this method's section
    settings: type[Settings] | None = None
    # A PEFT adapter: several load beside each other on one base and are picked per request when serving.
    peft_adapter: bool = False
    adds_weights: bool = True  # trains new weights beside the base (adapters), not the base's own (full, Spectrum)
    # Saved activations per token per decoder layer beyond a frozen block's, in elements: (shape, training).
    activation_elements: Callable[[ModelShape, Any], float] = _nothing
    virtual_positions: Callable[[Any], int] = _nothing  # positions the method adds to every sequence (prompt tuning)
    key_positions: Callable[[Any], int] = _nothing  # key/value positions added to attention (prefix tuning)
    # Bytes per weight of the decoder linear layers when the method holds them quantized (QLoRA); None: not quantized.
    quantized_weight_bytes: Callable[[Any], float] | None = None
    optimizer: Callable[[bool], str] = lambda on_cuda: "adamw_torch"  # the Trainer's `optim`
    after_load: Callable[[Any], Any] | None = None  # fix-up of a loaded model for inference
    describe: Callable[[Any], str] | None = None  # one line for the memory estimate's assumptions
    compare_by_default: bool = True  # in comparison.methods unless the config lists methods
    # What a hyperparameter search (training.search) varies, keyed as under training.: learning_rate, epochs,
    # lora.r, ...; the ranges bracket the defaults by what the literature and our own runs found to work.
    search_space: dict[str, Dimension] = field(default_factory=dict)
    # Its frozen base may be held in the compute dtype (training.frozen_weights): PEFT's LoRA/IA3 layers cast
    # their input to the adapter's own dtype, so adapters train in fp32 beside bf16 base weights.
    frozen_in_compute_dtype: bool = False
    # Its untrained state computes the base model's outputs (LoRA's and the bottleneck adapters' zero
    # up-projections, IA3's ones, full fine-tuning's copy), so pulling its weights toward where they started is a
    # penalty toward the base (training.l2_to_base). Prefix and prompt tuning start from virtual tokens that
    # already change the outputs.
    starts_as_base: bool = True

    @property
    def can_merge(self) -> bool:
        return self.merged is not None


def load_base(path: str, trust_remote_code: bool = False, dtype: str = "float32", attention: str | None = None):
    """The base model with fp32 master weights unless told otherwise: autocast supplies bf16/fp16 compute."""
    from transformers import AutoModelForCausalLM

    extra = {"attn_implementation": attention} if attention else {}
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code, **extra)


def base_for_training(path: str, training, precision: Precision, trust_remote_code: bool, frozen: bool = False):
    """The base model a method trains on, with training.attention resolved; `frozen` (the method trains added
    weights only): its weights in training.frozen_weights' dtype."""
    from tunesmith.training.fast_path import resolve

    fast = resolve(training, precision)
    return load_base(path, trust_remote_code, fast.frozen_dtype if frozen else "float32", fast.attention)


def save_peft(model, out_dir: Path) -> None:
    # Only the trained adapter: a preference trainer adds a frozen copy named "ref" as its reference model.
    model.save_pretrained(str(out_dir), selected_adapters=["default"])


def load_peft(base: str, trained_dir: str, precision: Precision, trust_remote_code: bool = False):
    from peft import PeftModel

    return PeftModel.from_pretrained(load_base(base, trust_remote_code, precision.dtype), trained_dir)


def merged_peft(base: str, trained_dir: str, precision: Precision, trust_remote_code: bool = False):
    """The adapter folded into the base weights: a plain model with the same outputs, without the adapter's cost."""
    return load_peft(base, trained_dir, precision, trust_remote_code).merge_and_unload()


def training_settings(trained_dir: str) -> dict:
    """The training config recorded beside a trained model (its manifest)."""
    return read_manifest(trained_dir).get("training", {})


def save_full(model, out_dir: Path) -> None:
    model.save_pretrained(str(out_dir))


def load_full(base: str, trained_dir: str, precision: Precision, trust_remote_code: bool = False):
    return load_base(trained_dir, trust_remote_code, precision.dtype)
