"""The model a pipeline run works with: where its checkpoint is and the precision it runs in."""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import ModelUnavailable
from tunesmith.models.hardware import choose_precision
from tunesmith.models.resolve import resolve_model
from tunesmith.records import PreparedModel

WEIGHT_FILES = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json", "*.gguf")


def check_loadable(path: str, trust_remote_code: bool = False) -> None:
    """Config and tokenizer load, and a local folder holds weight files; the weights themselves are not read
    (for a 70B model that would take minutes), so a file damaged inside is found when training loads it."""
    from transformers import AutoConfig

    from tunesmith.models.load import load_tokenizer

    AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    load_tokenizer(path, trust_remote_code)
    folder = Path(path)
    if folder.is_dir() and not any(next(folder.glob(pattern), None) for pattern in WEIGHT_FILES):
        raise OSError(f"{folder} holds no weight files (*.safetensors or *.bin)")


def check_model(spec: str, cache_dir, trust_remote_code: bool = False) -> str:
    """The checkpoint folder (or hub id) of the config's model, converting an embedded one on first use;
    ModelUnavailable, saying why, when it cannot be loaded."""
    try:
        path = resolve_model(spec, cache_dir)
        check_loadable(path, trust_remote_code)
        return path
    except (OSError, ValueError, KeyError, TypeError) as err:
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        raise ModelUnavailable(
            f"model '{spec}' cannot be loaded: {reason}",
            "model",
            "point `model:` at a Hugging Face checkpoint folder (config.json, tokenizer files and weights), an "
            "embedded model name (smollm2-135m-instruct), or a hub id where a hub is reachable",
        ) from err


def prepare_model(spec: str, cache_dir, trust_remote_code: bool = False, precision: str = "auto") -> PreparedModel:
    """The config's model, checked to load, with the precision the hardware runs it in."""
    return PreparedModel(
        check_model(spec, cache_dir, trust_remote_code), choose_precision(precision), trust_remote_code
    )
