"""Load what a training run produced, for evaluation, benchmarks and serving."""

from __future__ import annotations

from pathlib import Path

from tunesmith.models.load import load_tokenizer
from tunesmith.models.manifest import read_manifest, write_manifest
from tunesmith.records import Precision
from tunesmith.training.methods import METHODS


def load_trained(
    base: str, method: str, trained_dir: str, precision: Precision, trust_remote_code: bool = False, merge: bool = True
):
    """Return (model, tokenizer) in eval mode; adapters that can merge are merged (same outputs, less work)."""
    spec = METHODS[method]
    if merge and spec.can_merge:
        model = spec.merged(base, trained_dir, precision, trust_remote_code)
    else:
        model = spec.load(base, trained_dir, precision, trust_remote_code)
    model.to(precision.device)
    model.eval()
    if spec.after_load:
        model = spec.after_load(model)
    return model, load_tokenizer(trained_dir, trust_remote_code)


def write_merged(base: str, method: str, trained_dir: str, out_dir: Path, trust_remote_code: bool = False) -> str:
    """The adapter folded into the base weights, saved as a plain model folder (for servers that load folders),
    with the trained folder's manifest saying what it was merged from."""
    merged = METHODS[method].merged(base, trained_dir, Precision("cpu", "float32", "merging"), trust_remote_code)
    merged.save_pretrained(str(out_dir))
    load_tokenizer(trained_dir, trust_remote_code).save_pretrained(str(out_dir))
    details = read_manifest(trained_dir)
    if details:
        write_manifest(out_dir, details | {"method": "merged", "merged_from": details.get("method", method)})
    return str(out_dir)
