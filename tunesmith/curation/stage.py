"""The curation stage as a plain function: the model's tokenizer measures lengths, curate() does the rest."""

from __future__ import annotations

from pathlib import Path

from tunesmith.config.schema import DataConfig
from tunesmith.curation.curate import curate
from tunesmith.models.load import load_tokenizer
from tunesmith.records import CuratedData


def run_curation(
    config: DataConfig, model_path: str, trust_remote_code: bool, system: str, max_tokens: int, out_dir: Path
) -> CuratedData:
    return curate(config, load_tokenizer(model_path, trust_remote_code), system, max_tokens, out_dir)
