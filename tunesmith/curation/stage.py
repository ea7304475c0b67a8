"""The curation stage as a plain function: the model's tokenizer measures lengths, curate() does the rest."""

from __future__ import annotations

from pathlib import Path

from tunesmith.config import RunConfig
from tunesmith.config.schema import DataConfig
from tunesmith.curation.curate import curate
from tunesmith.curation.records import read_examples
from tunesmith.models.load import load_tokenizer
from tunesmith.records import CuratedData


def run_curation(
    config: DataConfig, model_path: str, trust_remote_code: bool, system: str, max_tokens: int | None, out_dir: Path,
    min_train_examples: int = 0, pinned_from: str | None = None,
) -> CuratedData:  # fmt: skip
    """`pinned_from`: the folder of an earlier model's split files, whose examples keep their splits."""
    tokenizer = load_tokenizer(model_path, trust_remote_code)
    pinned = split_ids(Path(pinned_from)) if pinned_from else None
    return curate(config, tokenizer, system, max_tokens, out_dir, min_train_examples, pinned)


def split_ids(folder: Path) -> dict[str, str]:
    """Example id -> split, from a folder of train/validation/test.jsonl (a registered version's data)."""
    return {e.id.split("~")[0]: split for split in ("train", "validation", "test")
            for e in read_examples(folder / f"{split}.jsonl")}  # fmt: skip


def training_threshold(config: RunConfig) -> int:
    """Examples below which training is off the table (unless the config forces it): curation then checks the
    data for prompting only."""
    return 0 if config.decision.force == "finetune" else config.decision.min_examples_finetune
