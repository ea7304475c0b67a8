"""Tunesmith as users install it: one `tunesmith` package whose library never reaches Prefect, and a wheel that
works from any folder with its suites, data and configs inside it."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import LABELS, REPO

LIBRARY = REPO / "tunesmith"
ORCHESTRATION = ("prefect", "prefect_dask", "prefect_ray")
WHEEL_SOURCES = ("pyproject.toml", "README.md", "tunesmith", "flows", "tasks", "expectations", "data", "configs")


def library_modules() -> list[str]:
    return sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for path in LIBRARY.rglob("*.py")
    )


def imported_names(path: Path) -> set[str]:
    """Every module an import statement in the file names, including imports inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_library_module_imports_prefect_even_lazily():
    offenders = {
        str(path.relative_to(REPO)): sorted(n for n in imported_names(path) if n.split(".")[0] in ORCHESTRATION)
        for path in LIBRARY.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    reaching_the_prefect_layer = {
        str(path.relative_to(REPO))
        for path in LIBRARY.rglob("*.py")
        if any(n.startswith(("tunesmith.flows", "tunesmith.tasks")) for n in imported_names(path))
    }
    assert reaching_the_prefect_layer == set()


def test_importing_the_whole_library_loads_no_prefect_module():
    """What the modules import transitively (through MLflow, lm-eval, ... too), not only what they name."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {library_modules()!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {ORCHESTRATION!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_every_library_folder_is_a_listed_package():
    """The wheel's package list is explicit (flows/ and tasks/ are mapped into tunesmith): a new folder must join it."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = [p for p in [LIBRARY, *LIBRARY.rglob("*")] if (p / "__init__.py").is_file()]
    folders = {".".join(p.relative_to(REPO).parts) for p in packages}
    assert folders <= listed


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> dict[str, str]:
    """A fresh virtual environment with only the built wheel installed in it, non-editable. Its dependencies are
    the ones this test run already has (a .pth line points at them), so nothing is downloaded."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: setuptools builds in the source tree and would leave build/ in the checkout
    source.mkdir()
    for part in WHEEL_SOURCES:
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / part, source / part)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", str(root / "dist"), str(source)],
        check=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (root / "dist").glob("tunesmith-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
         str(wheel)],
        check=True, timeout=300,
    )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "VIRTUAL_ENV")}
    return env | {"PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}", "PREFECT_HOME": str(root / "prefect-home")}


def in_empty_folder(tmp_path: Path, env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    folder = tmp_path / "elsewhere"
    folder.mkdir(exist_ok=True)
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=900)


def test_the_wheel_holds_one_package_and_its_data(wheel_env, tmp_path):
    for generic in ("tasks", "flows", "expectations", "configs", "data"):
        done = in_empty_folder(tmp_path, wheel_env, "python", "-c", f"import {generic}")
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, generic
    probe = (
        "import tunesmith, tunesmith.flows.pipeline, tunesmith.tasks.training\n"
        "from tunesmith.resources import expectations_dir, bundled_data, example_config\n"
        "print(tunesmith.__file__)\n"
        "print(sorted(p.name for p in expectations_dir().glob('*.json')))\n"
        "print(bundled_data('general_knowledge.jsonl').is_file(), example_config().is_file())"
    )
    done = in_empty_folder(tmp_path, wheel_env, "python", "-c", probe)
    assert done.returncode == 0, done.stderr
    location, suites, files = done.stdout.strip().splitlines()
    assert "site-packages" in location and str(REPO) not in location
    assert suites == str(sorted(p.name for p in (REPO / "expectations").glob("*.json")))
    assert files == "True True"


@pytest.mark.slow
@pytest.mark.e2e
def test_the_installed_command_checks_and_runs_a_user_config(wheel_env, prefect_server, tmp_path, tiny_model,
                                                             small_tickets):  # fmt: skip
    from prefect.settings import PREFECT_API_URL

    config = tmp_path / "elsewhere" / "tickets.yaml"
    config.parent.mkdir()
    config.write_text(
        f"name: installed\nmodel: {tiny_model}\ndata:\n  path: {small_tickets}\n  labels: [{', '.join(LABELS)}]\n"
        "training:\n  method: lora\n  max_steps: 4\n  learning_rate: 0.01\n"
        "evaluation:\n  max_examples: 8\nforgetting:\n  enabled: false\ntracking:\n  experiment: installed\n",
        encoding="utf-8",
    )
    env = wheel_env | {"PREFECT_API_URL": PREFECT_API_URL.value()}

    checked = in_empty_folder(tmp_path, env, "tunesmith", "check", config.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Great Expectations suite passed" in checked.stdout, checked.stdout

    ran = in_empty_folder(tmp_path, env, "tunesmith", "run", config.name)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (run_folder,) = [p for p in (config.parent / "runs").iterdir() if p.is_dir() and p.name[0].isdigit()]
    assert (run_folder / "run.log").is_file()
    client = MlflowClient(f"sqlite:///{config.parent / 'mlflow.db'}")  # the default store: the working folder
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("installed").experiment_id], "tags.mlflow.parentRunId IS NULL"
    )
    assert parent.info.status == "FINISHED"
    curation = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}' and run_name = 'curation'"
    )
    (validation,) = [a for a in client.list_artifacts(curation[0].info.run_id) if a.path == "gx_validation.json"]
    gx_file = client.download_artifacts(curation[0].info.run_id, validation.path, str(tmp_path))
    gx = json.loads(Path(gx_file).read_text())
    assert set(gx) == {"curated", "train", "validation", "test"}  # the suite ran on the data and on each split
    assert all(r["suite_name"] == "classification" and r["success"] for r in gx.values())
    assert all(r["statistics"]["evaluated_expectations"] > 0 for r in gx.values())


def called_names(path: Path) -> set[str]:
    return {
        node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
    }


def test_evaluation_comparison_and_promotion_score_through_one_function():
    """The held-out score a user reads in evaluation, in the method comparison and in the promotion gate comes
    from score_test_set on a TestSet; none of them scores examples its own way."""
    users = {"evaluation/stage.py", "comparison/assess.py", "promotion/champion.py"}
    for name in users:
        calls = called_names(LIBRARY / name)
        assert "score_test_set" in calls and not calls & {"score_with_template", "score_prompts", "score_model"}, name
    forgetting_change = {
        str(p.relative_to(LIBRARY)) for p in LIBRARY.rglob("*.py") if "compare_scores" in called_names(p)
    }
    assert forgetting_change == {"forgetting/stage.py"}  # before/after compared in one place
