import json

import pytest
from typer.testing import CliRunner

from tests.conftest import LABELS, ticket_rows, write_config, write_jsonl
from tunesmith.flows.cli import app

runner = CliRunner()


def test_check_passes_on_clean_data(tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model)
    result = runner.invoke(app, ["check", str(config)])
    assert result.exit_code == 0, result.output
    assert "160 rows" in result.output and "none rejected" in result.output


def test_check_names_the_test_file_that_is_the_test_split(tmp_path, tiny_model, small_tickets):
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "my card was charged twice", "label": "billing"}] * 2)
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, f"  test_path: {test}\n")
    result = runner.invoke(app, ["check", str(config)])
    assert result.exit_code == 0, result.output
    assert f"(test: 1 of the 2 rows in {test})" in " ".join(result.output.split())


def test_check_fails_on_unknown_key(tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, "trainig:\n  epochs: 1\n")
    result = runner.invoke(app, ["check", str(config)])
    assert result.exit_code == 2
    assert "trainig is not a known key (did you mean training?)" in result.output
    assert str(config) in result.output


def test_check_fails_on_missing_data_file(tmp_path, tiny_model):
    config = write_config(tmp_path / "run.yaml", tmp_path / "missing.jsonl", tiny_model)
    result = runner.invoke(app, ["check", str(config)])
    assert result.exit_code == 2
    assert "data.path" in result.output and "missing.jsonl' does not exist" in result.output


def test_check_fails_on_malformed_line_naming_file_and_line(tmp_path, tiny_model):
    data = write_jsonl(
        tmp_path / "data.jsonl",
        [{"text": "ok", "label": "billing"}, '{"text": "broken",', {"text": "x", "label": "spam"}],
    )
    config = write_config(tmp_path / "run.yaml", data, tiny_model)
    result = runner.invoke(app, ["check", str(config)])
    assert result.exit_code == 1
    assert f"{data} line 2: malformed JSON" in result.output
    assert f'{data} line 3: field "label" is "spam"' in result.output


def test_check_applies_overrides(tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model)
    result = runner.invoke(app, ["check", str(config), "--set", "training.max_seq_length=10"])
    assert result.exit_code == 1
    assert "longer than training.max_seq_length 10" in result.output


def test_run_refuses_a_bad_config_before_starting(tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model)
    result = runner.invoke(app, ["run", str(config), "--set", "training.epochs=-1"])
    assert result.exit_code == 2
    assert "training.epochs" in result.output


def _check(tmp_path, tiny_model, rows, *overrides):
    config = write_config(tmp_path / "run.yaml", write_jsonl(tmp_path / "data.jsonl", rows), tiny_model)
    return runner.invoke(app, ["check", str(config), *(arg for o in overrides for arg in ("--set", o))])


def test_check_fails_on_an_empty_data_file(tmp_path, tiny_model):
    result = _check(tmp_path, tiny_model, [])
    assert result.exit_code == 1 and "no rows to curate" in result.output and "holds no data" in result.output


def test_check_fails_on_a_single_class(tmp_path, tiny_model):
    rows = [r for r in ticket_rows() if r["label"] == "billing"][:30]
    trainable = "decision.min_examples_finetune=10"  # 30 rows are enough to train on: readiness is checked
    result = _check(tmp_path, tiny_model, rows, trainable)
    assert result.exit_code == 1
    assert "only class 'billing' has examples: a classifier needs examples of at least two classes" in result.output
    # Under the default 100 examples training is off the table: the check passes and says what it skipped.
    small = _check(tmp_path, tiny_model, rows)
    assert small.exit_code == 0 and "training-readiness checks" in small.output and "only class" in small.output


def test_check_fails_on_a_class_too_small_for_the_splits(tmp_path, tiny_model):
    rows = [
        r
        for label in LABELS
        for r in [t for t in ticket_rows() if t["label"] == label][: 3 if label == "general" else 20]
    ]
    trainable = "decision.min_examples_finetune=10"
    result = _check(tmp_path, tiny_model, rows, trainable)
    assert result.exit_code == 1
    assert "1 class(es) have too few examples for the splits: 'general' has 3; each needs at least 7" in result.output
    assert _check(tmp_path, tiny_model, rows, trainable, "data.min_examples_per_class=1").exit_code == 0  # 1+1+1 rows


def test_check_runs_the_expectation_suite(tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model)
    result = runner.invoke(app, ["check", str(config), "--set", "data.min_tokens=1000"])
    assert result.exit_code == 1
    assert "Great Expectations validation failed" in result.output and "on n_tokens" in result.output


@pytest.mark.parametrize(
    ("overrides", "bad_rows"),
    [([], 0), ([], 1), (["data.min_tokens=1000"], 0), (["data.max_rejected_fraction=0"], 1)],
)  # fmt: skip
def test_check_passes_only_when_curation_would(overrides, bad_rows, tmp_path, tiny_model, small_tickets):
    from tunesmith.config import load_config
    from tunesmith.curation.curate import curate
    from tunesmith.models.load import load_tokenizer
    from tunesmith.prompts import training_prompt

    rows = [json.loads(line) for line in small_tickets.read_text().splitlines()] + [{"text": "", "label": "urgent"}]
    rows = rows[: len(rows) - 1 + bad_rows]
    config = write_config(tmp_path / "run.yaml", write_jsonl(tmp_path / "data.jsonl", rows), tiny_model)
    checked = runner.invoke(app, ["check", str(config), *(arg for o in overrides for arg in ("--set", o))])
    cfg = load_config(config, overrides)
    system = training_prompt(cfg)
    curated = curate(cfg.data, load_tokenizer(str(tiny_model)), system, cfg.training.max_seq_length, tmp_path / "out")
    if checked.exit_code == 0:
        assert curated.ok
    stops = "curation would stop a run of this config" in checked.output
    assert stops == (not curated.ok) and (checked.exit_code == 1) == (not curated.ok or bad_rows > 0), checked.output
