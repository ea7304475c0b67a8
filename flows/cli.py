"""The `tunesmith` command: parse arguments, load the config, call a flow, show the person what happened."""

from __future__ import annotations

import gc
import importlib
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from tunesmith.config import ConfigError, RunConfig, load_config
from tunesmith.console.session import ConsoleSession, console_session, explain
from tunesmith.formats import FORMATS

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Fine-tune, evaluate and register language models.")

ConfigArg = Annotated[Path, typer.Argument(help="Run config (YAML), e.g. configs/quickstart.yaml")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a config key: --set training.epochs=1")]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Also show the libraries' own logs (they always go to run.log)")
]


def _fail(message: str, code: int) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _load(config: Path, overrides: list[str] | None) -> RunConfig:
    """The validated config, or exit 2 with the problem before anything starts."""
    try:
        return load_config(config, overrides)
    except ConfigError as err:
        _fail(explain(err, None, None)[0], err.exit_code)


@contextmanager
def _command(log_path: Path, verbose: bool) -> Iterator[ConsoleSession]:
    """A console session whose errors end the command with one paragraph and the error's exit code."""
    if not verbose:
        os.environ.setdefault("TQDM_DISABLE", "1")  # other tools' bars would only clutter the log
    with console_session(log_path, verbose, keep_capture=True) as session:
        try:
            yield session
        except typer.Exit:
            raise
        except (Exception, KeyboardInterrupt) as err:
            raise typer.Exit(session.fail(err)) from None


def _run_log(config: RunConfig, command: str) -> Path:
    """Where the log starts; it moves into the run's folder as run.log once the run has one."""
    return Path(config.output_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.name}-{command}.log"


def _preflight(config: RunConfig, session: ConsoleSession) -> Future[str] | None:
    """Find an unreachable Prefect API or MLflow server in seconds, before any work starts; start a temporary
    Prefect server where none is configured (the future answers once it does)."""
    from prefect.settings import get_current_settings

    from tunesmith.preflight import check_prefect_api, check_tracking
    from tunesmith.tracking.uri import tracking_source, tracking_uri

    api = get_current_settings().api.url
    check_prefect_api(api)
    uri = tracking_uri(config.tracking.tracking_uri)
    check_tracking(uri, tracking_source(config.tracking.tracking_uri))
    if api:
        session.say(f"Prefect: {api}\nMLflow:  {uri}")
        return None
    from tunesmith.tasks.orchestration import start_temporary_server

    session.say(f"MLflow:  {uri}\nPrefect: starting a temporary local server (set PREFECT_API_URL to use yours)")
    return start_temporary_server()


def _in_flow(session: ConsoleSession, config: RunConfig, flow: str, *args: Any) -> Any:
    """Call the flow named "module:function" after the preflight, importing it while a temporary server starts."""
    server = _preflight(config, session)
    module, name = flow.split(":")
    function = getattr(importlib.import_module(module), name)
    if server is not None:
        server.result()
    return function(*args)


@app.command()
def run(config: ConfigArg, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Run the whole pipeline: curate, decide, train, evaluate, forgetting, promotion, report."""
    cfg = _load(config, set_)
    with _command(_run_log(cfg, "run"), verbose) as session:
        result = _in_flow(session, cfg, "tunesmith.flows.pipeline:finetune_pipeline", str(config), set_ or [])
        session.table(f"Result: {result.outcome}", result_rows(result, session.log_path))


def result_rows(result, log_path: Path) -> list[tuple[str, str]]:
    """The run's outcome in a few rows: decision, main metric, forgetting, promotion, and where everything is."""
    rows = []
    if result.decision == "finetune":
        rows.append(("decision", f"fine-tune with {result.method}"))
    elif result.decision != "skip":
        template = Path(result.output_dir) / "decision" / "prompt_template.json"
        rows.append(("decision", f"{result.decision.replace('_', ' ')}; the prompt to use: {template}"))
    if result.metric:
        base, tuned = result.metrics[f"base_{result.metric}"], result.metrics[f"finetuned_{result.metric}"]
        prompt = (result.base_prompt or "zero_shot").replace("_", "-")
        rows.append((result.metric, f"base {base:.3f} ({prompt} prompt) -> fine-tuned {tuned:.3f}"))
    if result.task_gate:
        rows.append(("task gate", result.task_gate))
    if result.forgetting:
        rows.append(("forgetting gate", result.forgetting))
    if result.model_version:
        rows.append(("model", f"models:/{result.model_version['name']}/{result.model_version['version']}"))
    rows.append(("outputs", result.output_dir))
    if result.summary_path:
        rows.append(("summary", result.summary_path))
    rows.append(("log", str(log_path)))
    rows.append(("MLflow", mlflow_location(result.tracking_uri, result.experiment_id, result.run_id)))
    return rows


def mlflow_location(uri: str, experiment_id: str, run_id: str) -> str:
    """Where to open a run: its page on a tracking server, or how to start the UI on a local store."""
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return (
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id} after "
        f"`mlflow ui --backend-store-uri {uri}` (make mlflow-ui)"
    )


@app.command()
def decide(config: ConfigArg, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Curate the data and decide (prompting, RAG or fine-tuning, and the method) without training."""
    cfg = _load(config, set_)
    with _command(_run_log(cfg, "decide"), verbose) as session:
        from tunesmith.decision.render import render_decision

        record = _in_flow(session, cfg, "tunesmith.flows.decide:decide_flow", str(config), set_ or [])
        session.markdown(render_decision(record))


@app.command()
def compare(
    config: ConfigArg,
    method: Annotated[
        list[str] | None, typer.Option("--method", help="A method to compare; repeat (default: comparison.methods)")
    ] = None,
    set_: SetOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Train every selected method on the same splits and print the comparison table."""
    cfg = _load(config, [*(set_ or []), *([f"comparison.methods={method}"] if method else [])])
    with _command(_run_log(cfg, "compare"), verbose) as session:
        result = _in_flow(session, cfg, "tunesmith.flows.compare:compare_methods", str(config), method, set_ or [])
        session.markdown(result.report)
        session.say(f"\noutputs: {result.output_dir}\nlog: {session.log_path}\nMLflow run: {result.run_id}")


@app.command()
def curve(config: ConfigArg, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Train the method on 12.5/25/50/100% of the training split and fit a learning curve: what 2x and 4x the data
    would score, with intervals."""
    cfg = _load(config, set_)
    with _command(_run_log(cfg, "curve"), verbose) as session:
        result = _in_flow(session, cfg, "tunesmith.flows.curve:learning_curve", str(config), set_ or [])
        session.markdown(result.report)
        session.say(f"\noutputs: {result.output_dir}\nlog: {session.log_path}\nMLflow run: {result.run_id}")


@app.command()
def tune(
    config: ConfigArg,
    trials: Annotated[int | None, typer.Option("--trials", help="Finished trials the study should hold")] = None,
    set_: SetOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Search the method's hyperparameters (Optuna; training.search) and print the settings to train with."""
    overrides = [*(set_ or []), *([f"training.search.trials={trials}"] if trials else [])]
    cfg = _load(config, overrides)
    with _command(_run_log(cfg, "tune"), verbose) as session:
        from tunesmith.search.render import render_search

        result = _in_flow(session, cfg, "tunesmith.flows.tune:tune_hyperparameters", str(config), overrides)
        session.markdown("\n".join(render_search(result.to_json(), "#")))
        flags = " ".join(f"--set training.{k}={_setting(v)}" for k, v in result.best_settings.items())
        session.say(f"\nTo train with these settings: tunesmith run {config} {flags}\n"
                    f"or set training.search.trials in the config to search before each training.\n"
                    f"study: {result.study} in {result.storage}\nlog: {session.log_path}")  # fmt: skip


def _setting(value: Any) -> str:
    return f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)


@app.command()
def check(config: ConfigArg, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Check the config, the model and the data as a run's curation would, without training.

    Exit 0 means curation will not stop a run of this config: the same rows are rejected, the same splits are
    made and the same Great Expectations suite passes."""
    cfg = _load(config, set_)
    log = Path(tempfile.gettempdir()) / f"tunesmith-check-{os.getpid()}.log"
    with _command(log, verbose) as session:
        from tunesmith.curation.check import check_data
        from tunesmith.models.load import load_tokenizer
        from tunesmith.models.prepared import check_model

        model_path = check_model(cfg.model, cfg.model_cache_dir, cfg.trust_remote_code)
        report = check_data(cfg, load_tokenizer(model_path, cfg.trust_remote_code))
        code = _check_report(session, config, cfg, report)
    log.unlink(missing_ok=True)  # kept only when something went wrong that its traceback explains
    raise typer.Exit(code)


def _check_report(session: ConsoleSession, config: Path, cfg: RunConfig, report) -> int:
    from tunesmith.curation.records import by_reason

    c, problems, invalid = report.data.counts, report.problems, report.invalid_rows
    if invalid:
        reasons = by_reason(invalid)
        shown = "\n".join(f"  {line}" for line in reasons[:50])
        more = f"\n  ... and {len(reasons) - 50} more reasons" if len(reasons) > 50 else ""
        tolerated = (
            "" if problems else
            f" (a run would go on without them: up to data.max_rejected_fraction {cfg.data.max_rejected_fraction:.0%}"
            " may be rejected)"
        )  # fmt: skip
        in_test = sum(1 for r in invalid if cfg.data.test_path and r.source.startswith(str(cfg.data.test_path)))
        where = f"{len(invalid) - in_test} of {c['read']} rows in {cfg.data.path}" + (
            f" and {in_test} of {c['test_file_read']} in {cfg.data.test_path}" if in_test else ""
        )
        session.say(f"{where} would be rejected{tolerated}:\n{shown}{more}")
    if problems:
        session.say("curation would stop a run of this config:\n" + "\n".join(f"- {p}" for p in problems))
    if invalid or problems:
        return 1
    test_file = ""
    if cfg.data.test_path:
        test_file = f" (test: {c['test']} of the {c['test_file_read']} rows in {cfg.data.test_path})"
    session.say(
        f"ok: {config} is valid; {c['read']} rows in {cfg.data.path}, none rejected, "
        f"{c['read'] - c['kept_unique']} duplicates; splits {c['train']}/{c['validation']}/{c['test']}{test_file}; "
        f"Great Expectations suite passed; model {cfg.model} loads"
    )
    data = report.data
    session.say(f"training.max_seq_length {data.max_seq_length}: {data.max_seq_length_source}")
    if data.ignored_fields:
        fields = ", ".join(f"{name} ({rows} rows)" for name, rows in data.ignored_fields.items())
        session.say(f"fields the {data.data_format} format does not read, skipped: {fields}")
    for warning in data.warnings:
        session.say(f"note: {warning}")
    return 0


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="The new project's folder (created; must be empty if it exists)")],
    data_format: Annotated[str, typer.Option("--format", help=f"Your data: {', '.join(FORMATS)}")] = "classification",
) -> None:
    """Start a project: config.yaml with every key and its default, prefect.yaml for the installed flows, a README."""
    from tunesmith.starter.project import init_project

    if data_format not in FORMATS:
        _fail(f"unknown --format {data_format!r}: use one of {', '.join(FORMATS)}", 2)
    try:
        written = init_project(folder, data_format)
    except FileExistsError as err:
        _fail(str(err), 2)
    typer.echo(f"created {folder}: " + ", ".join(p.name for p in written))
    data = folder / "data" / "train.jsonl"
    typer.echo(f"next: put your data at {data}, then: cd {folder} && tunesmith check config.yaml")


@app.command()
def predict(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Trained model folder, MLflow URI (models:/NAME/VERSION, models:/NAME@ALIAS, runs:/...) or base model",
        ),
    ],
    adapter: Annotated[
        list[str] | None,
        typer.Option("--adapter", help="NAME=PATH_OR_URI of an adapter to load on the base; repeat for several"),
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", help="Prompts, one per line (text or JSON); default: stdin")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest reply")] = 64,
    batch_size: Annotated[int, typer.Option(help="Prompts generated together")] = 8,
) -> None:
    """Answer prompts with a trained model (a classifier answers with one of its labels and its probability);
    JSON lines with "adapter" pick one of several loaded adapters."""
    import json
    import sys

    from tunesmith.quiet import quiet_libraries
    from tunesmith.serving.predict import read_requests

    quiet_libraries()
    predictor = _predictor(model, adapter)
    lines = input_file.read_text(encoding="utf-8").splitlines() if input_file else sys.stdin
    for row in predictor.predict(list(read_requests(lines)), max_new_tokens, batch_size):
        typer.echo(json.dumps(row, ensure_ascii=False))


@app.command()
def serve(
    model: Annotated[str, typer.Option("--model", help="Trained model folder, MLflow URI or base model")],
    adapter: Annotated[list[str] | None, typer.Option("--adapter", help="NAME=PATH_OR_URI; repeat for several")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
) -> None:
    """Serve a trained model as an OpenAI-compatible chat endpoint (/v1/chat/completions)."""
    import uvicorn

    from tunesmith.quiet import quiet_libraries
    from tunesmith.serving.openai_api import create_app

    quiet_libraries()
    predictor = _predictor(model, adapter)
    uvicorn.run(create_app(predictor), host=host, port=port, log_level="warning")


def _predictor(model: str, adapter: list[str] | None):
    from tunesmith.serving.predict import load_predictor

    try:
        return load_predictor(model, _adapters(adapter))
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err), 2)


def _adapters(specs: list[str] | None) -> dict[str, str]:
    adapters = {}
    for spec in specs or []:
        name, sep, location = spec.partition("=")
        if not sep:
            _fail(f"--adapter {spec}: expected NAME=PATH_OR_URI", 2)
        adapters[name] = location
    return adapters


def main() -> None:
    try:
        app()
    finally:
        # Python's shutdown runs full garbage collections over every loaded module (torch, transformers, MLflow):
        # seconds between the result and the prompt. Nothing needs them at exit, so the heap is frozen out of them.
        gc.freeze()


if __name__ == "__main__":
    main()
