"""`tunesmith init`: a new project that checks once it has data and deploys with Prefect as generated."""

from __future__ import annotations

import os
import shutil
import subprocess

import httpx
import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from tests.conftest import LABELS
from tests.services import BIN
from tunesmith.config import load_config
from tunesmith.config.schema import RunConfig
from tunesmith.flows.cli import app
from tunesmith.formats import FORMATS
from tunesmith.starter.project import starter_config


def schema_keys(model: type[BaseModel]) -> set[str]:
    keys = set()
    nested = {name: info.annotation for name, info in model.model_fields.items()}
    nested |= model.section_models() if hasattr(model, "section_models") else {}
    for name, annotation in nested.items():
        keys.add(name)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= schema_keys(annotation)
    return keys


@pytest.mark.parametrize("data_format", FORMATS)
def test_the_starter_config_lists_every_key_and_loads(tmp_path, monkeypatch, data_format):
    text = starter_config("p", data_format)
    mentioned = {line.lstrip("# ").split(":", 1)[0] for line in text.splitlines() if ":" in line}
    assert schema_keys(RunConfig) <= mentioned
    live = yaml.safe_load(text)
    assert live["data"]["format"] == data_format and live["name"] == "p"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("")
    monkeypatch.chdir(tmp_path)  # relative paths resolve from the working folder, as the generated README says
    (tmp_path / "config.yaml").write_text(text)
    config = load_config(tmp_path / "config.yaml")
    assert config.data.format == data_format and config.training == RunConfig.model_fields["training"].default


def test_an_initialised_project_passes_check_once_pointed_at_data(tmp_path, small_tickets, tiny_model, monkeypatch):
    project = tmp_path / "my-project"
    created = CliRunner().invoke(app, ["init", str(project)])
    assert created.exit_code == 0, created.output
    assert {p.name for p in project.iterdir()} == {"config.yaml", "prefect.yaml", "README.md", "data"}
    assert "tunesmith check config.yaml" in (project / "README.md").read_text()

    shutil.copy(small_tickets, project / "data" / "train.jsonl")
    config = project / "config.yaml"
    config.write_text(config.read_text().replace('["billing", "technical", "general"]', str(LABELS)))
    monkeypatch.chdir(project)
    checked = CliRunner().invoke(app, ["check", "config.yaml", "--set", f"model={tiny_model}"])
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("ok: config.yaml is valid; 160 rows")

    again = CliRunner().invoke(app, ["init", str(project)])
    assert again.exit_code == 2 and "not empty" in again.output
    unknown = CliRunner().invoke(app, ["init", str(tmp_path / "other"), "--format", "images"])
    assert unknown.exit_code == 2 and "unknown --format 'images'" in unknown.output


@pytest.mark.e2e
def test_prefect_deploy_accepts_the_generated_prefect_yaml(prefect_server, tmp_path):
    from prefect.settings import PREFECT_API_URL

    project = tmp_path / "nightly"
    assert CliRunner().invoke(app, ["init", str(project), "--format", "instruction"]).exit_code == 0
    api = PREFECT_API_URL.value()
    env = os.environ | {"PREFECT_API_URL": api}

    def prefect(*args: str) -> None:
        done = subprocess.run([str(BIN / "prefect"), "--no-prompt", *args], cwd=project, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

    prefect("work-pool", "create", "nightly-process", "--type", "process")
    prefect("deploy", "--all")
    deployments = {
        d["name"]: d
        for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
        if d["work_pool_name"] == "nightly-process"
    }
    assert set(deployments) == {"nightly-retrain", "on-demand", "weekly-methods"}
    assert deployments["on-demand"]["entrypoint"] == "tunesmith.flows.pipeline:finetune_pipeline"
    assert deployments["nightly-retrain"]["parameters"] == {"config_path": "config.yaml", "overrides": []}
    assert deployments["nightly-retrain"]["pull_steps"][0]["prefect.deployments.steps.set_working_directory"] == {
        "directory": str(project.resolve())
    }
