from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import write_config, write_jsonl

runner = CliRunner()


def test_check_passes_on_clean_data(tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model)
    result = runner.invoke(app, ["check", str(config)])
    assert result.exit_code == 0, result.output
    assert "160 rows" in result.output and "none rejected" in result.output


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
