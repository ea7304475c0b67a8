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
    typer.echo(f"\ndecision: {result.decision}")
    for key, value in result.metrics.items():
        typer.echo(f"{key}: {value:.4f}")
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
