"""The `tunesmith` command: parse arguments, load the config, call a flow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tasks.config import ConfigError, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Fine-tune, evaluate and register language models.")

ConfigArg = Annotated[Path, typer.Argument(help="Run config (YAML), e.g. configs/quickstart.yaml")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a config key: --set training.epochs=1")]


def _fail(message: str, code: int) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@app.command()
def run(config: ConfigArg, set_: SetOpt = None) -> None:
    """Run the whole pipeline: curate, decide, train, evaluate, forgetting, report."""
    try:
        load_config(config, set_)  # fail before Prefect starts anything
    except ConfigError as err:
        _fail(str(err), 2)
    from flows.pipeline import finetune_pipeline

    result = finetune_pipeline(str(config), set_ or [])
    typer.echo(f"\n{result.outcome}\ndecision: {result.decision}")
    for key, value in result.metrics.items():
        typer.echo(f"{key}: {value:.4f}")
    if result.model_version:
        typer.echo(f"model: models:/{result.model_version['name']}/{result.model_version['version']}")
    typer.echo(f"summary: {result.summary_path}\noutputs: {result.output_dir}\nMLflow run: {result.run_id}")


@app.command()
def decide(config: ConfigArg, set_: SetOpt = None) -> None:
    """Curate the data and decide (prompting, RAG or fine-tuning, and the method) without training."""
    try:
        load_config(config, set_)
    except ConfigError as err:
        _fail(str(err), 2)
    from flows.decide import decide_flow
    from tasks.decision.render import render_decision

    typer.echo(render_decision(decide_flow(str(config), set_ or [])))


@app.command()
def compare(
    config: ConfigArg,
    method: Annotated[
        list[str] | None, typer.Option("--method", help="A method to compare; repeat (default: comparison.methods)")
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Train every selected method on the same splits and print the comparison table."""
    try:
        load_config(config, [*(set_ or []), *([f"comparison.methods={method}"] if method else [])])
    except ConfigError as err:
        _fail(str(err), 2)
    from flows.compare import compare_methods

    result = compare_methods(str(config), method, set_ or [])
    typer.echo(f"\n{result.report}\noutputs: {result.output_dir}\nMLflow run: {result.run_id}")


@app.command()
def check(config: ConfigArg, set_: SetOpt = None) -> None:
    """Validate the config, the model and the data without training; exit non-zero on problems."""
    try:
        cfg = load_config(config, set_)
    except ConfigError as err:
        _fail(str(err), 2)
    from tasks.curation.check import check_data
    from tasks.models.load import load_tokenizer
    from tasks.models.resolve import resolve_model

    try:
        tokenizer = load_tokenizer(resolve_model(cfg.model, cfg.model_cache_dir), cfg.trust_remote_code)
    except (OSError, ValueError) as err:
        _fail(f"model '{cfg.model}' cannot be loaded: {err}", 2)
    read, problems = check_data(cfg, tokenizer)
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        _fail(f"{len(problems)} of {read} rows in {cfg.data.path} have problems:\n{shown}{more}", 1)
    typer.echo(f"ok: {config} is valid; {read} rows in {cfg.data.path}, none rejected; model {cfg.model} loads")


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
    """Answer prompts with a trained model; JSON lines with "adapter" pick one of several loaded adapters."""
    import json
    import sys

    from tasks.quiet import quiet_libraries
    from tasks.serving.predict import read_requests

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

    from tasks.quiet import quiet_libraries
    from tasks.serving.openai_api import create_app

    quiet_libraries()
    predictor = _predictor(model, adapter)
    uvicorn.run(create_app(predictor), host=host, port=port, log_level="warning")


def _predictor(model: str, adapter: list[str] | None):
    from tasks.serving.predict import Predictor

    try:
        return Predictor(model, _adapters(adapter))
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
    app()


if __name__ == "__main__":
    main()
