from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, write_config
from tunesmith.config import ConfigError, load_config, save_resolved


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_config_validates_and_says_how_to_run_it(path, monkeypatch):
    monkeypatch.chdir(REPO)
    config = load_config(path)
    assert config.name
    assert path.read_text().splitlines()[0].startswith("# tunesmith ")


def test_quickstart_defaults_are_filled_in(monkeypatch):
    monkeypatch.chdir(REPO)
    config = load_config("configs/quickstart.yaml")
    assert config.model == "smollm2-135m-instruct"
    assert config.training.lora.r == 16
    assert config.data.split.train == pytest.approx(0.8)
    assert config.trust_remote_code is False


def test_unknown_key_is_named_with_a_suggestion(tmp_path, small_tickets):
    path = write_config(
        tmp_path / "run.yaml", small_tickets, "smollm2-135m-instruct", "training:\n  lerning_rate: 0.1\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    assert "training.lerning_rate is not a known key" in message
    assert "did you mean training.learning_rate?" in message


def test_wrong_type_names_key_and_value(tmp_path, small_tickets):
    path = write_config(tmp_path / "run.yaml", small_tickets, "smollm2-135m-instruct", "training:\n  epochs: two\n")
    with pytest.raises(ConfigError, match=r"training.epochs: 'two' is not valid"):
        load_config(path)


def test_missing_data_file_is_named(tmp_path):
    path = write_config(tmp_path / "run.yaml", tmp_path / "nope.jsonl", "smollm2-135m-instruct")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "data.path" in str(err.value) and "nope.jsonl" in str(err.value) and "does not exist" in str(err.value)


def test_missing_model_path_is_named(tmp_path, small_tickets):
    path = write_config(tmp_path / "run.yaml", small_tickets, str(tmp_path / "no-such-model"))
    with pytest.raises(ConfigError, match=r"model: .*no-such-model.* does not exist"):
        load_config(path)


def test_folder_without_config_json_is_not_a_model(tmp_path, small_tickets):
    (tmp_path / "empty").mkdir()
    path = write_config(tmp_path / "run.yaml", small_tickets, str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="has no config.json"):
        load_config(path)


def test_classification_needs_labels(tmp_path, small_tickets):
    path = tmp_path / "run.yaml"
    path.write_text(f"data:\n  path: {small_tickets}\n  format: classification\n")
    with pytest.raises(ConfigError, match="data.labels"):
        load_config(path)


def test_overrides_are_parsed_as_yaml_values(tmp_path, small_tickets):
    path = write_config(tmp_path / "run.yaml", small_tickets, "smollm2-135m-instruct")
    config = load_config(path, ["training.epochs=1", "training.lora.r=4", "forgetting.enabled=false"])
    assert config.training.epochs == 1.0
    assert config.training.lora.r == 4
    assert config.forgetting.enabled is False


def test_override_of_unknown_key_fails(tmp_path, small_tickets):
    path = write_config(tmp_path / "run.yaml", small_tickets, "smollm2-135m-instruct")
    with pytest.raises(ConfigError, match="training.epoch is not a known key"):
        load_config(path, ["training.epoch=1"])


def test_split_fractions_must_sum_to_one(tmp_path, small_tickets):
    path = write_config(tmp_path / "run.yaml", small_tickets, "smollm2-135m-instruct")
    with pytest.raises(ConfigError, match="must be 1.0"):
        load_config(path, ["data.split.train=0.5"])


def test_resolved_config_round_trips(tmp_path, small_tickets):
    path = write_config(tmp_path / "run.yaml", small_tickets, "smollm2-135m-instruct")
    config = load_config(path, ["training.epochs=3"])
    saved = save_resolved(config, tmp_path / "out" / "resolved.yaml")
    again = load_config(saved)
    assert again == config
    assert yaml.safe_load(Path(saved).read_text())["training"]["learning_rate"] == config.training.learning_rate


def _keys(model, prefix=""):
    from tunesmith.config.load import _model_of

    for name, field in model.model_fields.items():
        nested = _model_of(field.annotation)
        if nested is not None:
            yield from _keys(nested, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_every_config_key_is_documented():
    from tunesmith.config.schema import RunConfig

    reference = (REPO / "docs" / "configuration.md").read_text()
    missing = [key for key in _keys(RunConfig) if f"`{key}`" not in reference]
    assert not missing, f"docs/configuration.md does not describe: {missing}"
