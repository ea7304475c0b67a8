"""Forgetting planted on purpose, found, and mitigated by the pipeline's own retraining (real training, real
lm-eval, real Prefect flow and MLflow store): the tiny model first learns general facts, then full fine-tuning at a
high rate on tickets alone makes it forget them; the attempt that mixes the facts back in as replay forgets less."""

import json
import random
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import build_tiny_model, small_ticket_rows, write_config, write_jsonl
from tunesmith.flows.pipeline import finetune_pipeline

SYLLABLES = ("bo", "ka", "mi", "tu", "re", "sa", "lo", "ne")
OBJECTS = [a + b for a in SYLLABLES for b in ("ran", "mel", "tis", "gud")]  # 32 things
COLOURS = ["red", "blue", "green", "yellow"]


def facts(seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(thing, rng.choice(COLOURS)) for thing in OBJECTS]


# Turns rendered in the benchmark's own words ("Question: ...\nAnswer: ..."), so that replay rows are trained as
# the questions are asked: the test is about the pipeline acting on forgetting, not about a tiny model carrying
# knowledge from one prompt format to another.
PLAIN_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n"
    "{% elif m['role'] == 'user' %}Question: {{ m['content'] }}\nAnswer:"
    "{% else %} {{ m['content'] }}<|im_end|>{% endif %}{% endfor %}"
)


def taught_model(out_dir: Path) -> Path:
    """A tiny model trained (plain PyTorch, a few seconds) to know each object's colour: the general capability
    the fine-tuning will damage."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    corpus = [f"Question: What colour is the {t}?\nAnswer: {c}<|im_end|>" for t, c in facts()]
    tickets = [r["text"] for r in small_ticket_rows()]
    build_tiny_model(out_dir, corpus + tickets + COLOURS + ["urgent billing technical general"])
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    tokenizer.chat_template = PLAIN_TEMPLATE
    tokenizer.save_pretrained(out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    texts = corpus
    for step in range(400):
        batch = tokenizer(random.Random(step).sample(texts, 32), return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out_dir)
    return out_dir


@pytest.mark.e2e
def test_planted_forgetting_is_found_and_the_replay_attempt_forgets_less(prefect_server, mlflow_uri, tmp_path):
    model = taught_model(tmp_path / "taught")
    benchmark = write_jsonl(tmp_path / "colours.jsonl", [
        {"question": f"What colour is the {t}?", "choices": COLOURS, "answer": COLOURS.index(c)} for t, c in facts()
    ])  # fmt: skip
    replay = write_jsonl(tmp_path / "replay.jsonl", [
        {"instruction": f"What colour is the {t}?", "input": "", "output": c} for t, c in facts()
    ])  # fmt: skip
    tickets = write_jsonl(tmp_path / "tickets.jsonl", small_ticket_rows())
    config = write_config(
        tmp_path / "run.yaml",
        tickets,
        model,
        f"""training:
  method: full
  learning_rate: 0.003
  max_steps: 60
  batch_size: 8
forgetting:
  benchmarks:
    - name: colours
      path: {benchmark}
  mitigation:
    max_attempts: 1
tracking:
  experiment: planted
""",
    )
    # 10% replay rehearses 14 of the 32 facts; the attempt's 20% all of them (32 rows beside 128 tickets).
    overrides = [f"data.replay.path={replay}", "data.replay.fraction=0.1"]
    state = finetune_pipeline(str(config), overrides, return_state=True)
    result = state.result()
    summary = Path(result.summary_path).read_text()
    assert "## Mitigating forgetting" in summary, summary
    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("planted").experiment_id])
    report = next(r for r in runs if r.info.run_name == "report")
    attempts = json.loads(
        Path(client.download_artifacts(report.info.run_id, "mitigation_attempts.json", str(tmp_path))).read_text()
    )
    first, replayed = attempts
    assert first["forgetting"] == "forgetting" and first["changes"] == "as configured"
    assert replayed["changes"] == "replay 20%"
    assert replayed["forgetting_change"]["difference"] > first["forgetting_change"]["difference"], summary
    attempt = next(r for r in runs if r.info.run_name == "attempt-1")
    assert attempt.data.tags["mlflow.parentRunId"] == result.run_id
    nested = {r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == attempt.info.run_id}
    assert {"curation", "training", "evaluation", "forgetting"} <= nested

    # Run again: each attempt's curation, training and forgetting scores are reused, not computed again.
    again = finetune_pipeline(str(config), [*overrides, "retraining.skip_unchanged=false"], return_state=True)
    rerun = again.result().run_id
    runs = client.search_runs([client.get_experiment_by_name("planted").experiment_id])
    attempt = next(r for r in runs if r.info.run_name == "attempt-1" and r.data.tags["mlflow.parentRunId"] == rerun)
    stages = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == attempt.info.run_id}
    assert "tunesmith.reused_training_of_run" in stages["training"].data.tags
    assert stages["forgetting"].data.tags.get("tunesmith.forgetting_scores_reused") == "true"
