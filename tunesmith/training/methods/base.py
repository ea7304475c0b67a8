"""What every training method module shares: its defaults record and the save/load helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tunesmith.models.hardware import Precision


@dataclass(frozen=True)
class MethodDefaults:
    """Hyperparameters from established practice; every one can be overridden in training.*"""

    learning_rate: float
    epochs: float = 2.0
    weight_decay: float = 0.0


def load_base(path: str, trust_remote_code: bool = False, dtype: str = "float32"):
    """The base model with fp32 master weights: autocast supplies bf16/fp16 compute where chosen."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)


def save_peft(model, out_dir: Path) -> None:
    model.save_pretrained(str(out_dir))


def load_peft(base: str, trained_dir: str, precision: Precision, trust_remote_code: bool = False):
    from peft import PeftModel

    return PeftModel.from_pretrained(load_base(base, trust_remote_code, precision.dtype), trained_dir)


def merged_peft(base: str, trained_dir: str, precision: Precision, trust_remote_code: bool = False):
    """The adapter folded into the base weights: a plain model with the same outputs, without the adapter's cost."""
    return load_peft(base, trained_dir, precision, trust_remote_code).merge_and_unload()


def training_settings(trained_dir: str) -> dict:
    """The training config recorded beside a trained model (see sft.MANIFEST)."""
    manifest = Path(trained_dir) / "tunesmith_model.json"
    return json.loads(manifest.read_text()).get("training", {}) if manifest.is_file() else {}


def save_full(model, out_dir: Path) -> None:
    model.save_pretrained(str(out_dir))


def load_full(base: str, trained_dir: str, precision: Precision, trust_remote_code: bool = False):
    return load_base(trained_dir, trust_remote_code, precision.dtype)
