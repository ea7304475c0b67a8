"""The embedded default model: converted once, atomically, and a real instruction-following model."""

import multiprocessing
import os
from pathlib import Path

import pytest

from tunesmith.evaluation.scoring import generate
from tunesmith.models.embedded import materialize
from tunesmith.models.load import load_model
from tunesmith.models.resolve import resolve_model
from tunesmith.records import Precision

CACHE = Path(os.environ.get("TUNESMITH_MODEL_CACHE", "~/.cache/tunesmith/models")).expanduser()
pytestmark = pytest.mark.slow


def test_default_model_answers_a_simple_question():
    path = resolve_model("smollm2-135m-instruct", CACHE)
    assert (Path(path) / "model.safetensors").is_file() and (Path(path) / "tokenizer.json").is_file()
    model, tokenizer = load_model(path, Precision("cpu", "float32", "test"))
    assert 130e6 < model.num_parameters() < 140e6
    (answer,) = generate(
        model, tokenizer, [[{"role": "user", "content": "What is the capital of France?"}]], max_new_tokens=20
    )
    assert "Paris" in answer


def _convert(cache: str) -> str:
    return str(materialize("smollm2-135m-instruct", Path(cache)))


def test_two_conversions_at_once_never_leave_a_half_checkpoint(tmp_path):
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        paths = pool.map(_convert, [str(tmp_path)] * 2)
    assert paths[0] == paths[1] == str(tmp_path / "smollm2-135m-instruct")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smollm2-135m-instruct"]  # no staging folders left
    assert materialize("smollm2-135m-instruct", tmp_path) == tmp_path / "smollm2-135m-instruct"  # reused
