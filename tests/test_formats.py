"""A data format owns everything about itself: one defined here and registered is a valid config choice, is read,
checked and curated like the built-in formats (GX suite included) and passes `tunesmith check`, with no other file
touched."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import small_ticket_rows, write_jsonl
from tunesmith.config import ConfigError, load_config
from tunesmith.curation.stage import run_curation
from tunesmith.flows.cli import app
from tunesmith.formats import FORMATS, Parsed, TaskFormat, register
from tunesmith.formats.base import exchange, text_field
from tunesmith.prompts import training_prompt, untrained_prompt


def parse_faq(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    return Parsed(exchange(text_field(row, "question"), text_field(row, "answer")))


FAQ = TaskFormat(
    name="faq",
    fields=frozenset({"question", "answer"}),
    parse=parse_faq,
    baseline_system="Answer the customer's question in one sentence.",
    starter_row={"question": "How do I reset my password?", "answer": "Use the link on the sign-in page."},
    suite="instruction.json",  # prompt/answer checks: what a question-answer pair needs too
)


@pytest.fixture
def faq_format():
    register(FAQ)
    yield FAQ
    FORMATS.pop(FAQ.name)


def faq_rows(n: int) -> list[dict]:
    """Distinct support messages as questions (the bundled tickets), each answered by its team."""
    return [{"question": r["text"], "answer": f"The {r['label']} team will answer this today."}
            for r in small_ticket_rows()[:n]]  # fmt: skip


def faq_config(tmp_path, model, rows: list) -> str:
    data = write_jsonl(tmp_path / "faq.jsonl", rows)
    path = tmp_path / "run.yaml"
    path.write_text(f"name: faq\nmodel: {model}\noutput_dir: {tmp_path / 'runs'}\ndata:\n  path: {data}\n"
                    "  format: faq\n", encoding="utf-8")  # fmt: skip
    return str(path)


def test_an_unregistered_format_is_refused_naming_the_known_ones(tmp_path, tiny_model):
    known = "use one of classification, multilabel, instruction"
    with pytest.raises(ConfigError, match=f"unknown data format 'faq': {known}"):
        load_config(faq_config(tmp_path, tiny_model, faq_rows(3)))


def test_a_registered_format_is_curated_with_its_own_fields_prompt_and_suite(faq_format, tmp_path, tiny_model):
    rows = [*faq_rows(40), {"question": "What now?"}, {"question": "Hi", "answer": "Hello", "label": "x"}]
    config = load_config(faq_config(tmp_path, tiny_model, rows), ["data.unknown_fields=reject"])
    assert untrained_prompt(config) == FAQ.baseline_system
    data = run_curation(config.data, str(tiny_model), False, training_prompt(config), None, tmp_path / "curated")
    assert data.task_type == "generation" and data.validation["success"], data.validation["summary"]
    assert data.counts["read"] == 42 and data.counts["kept_unique"] == 40
    assert data.rejected_by_kind == {"missing_field": 1, "unexpected_field": 1}
    counts = data.counts  # train holds the task's rows and the general replay mixed in (on by default)
    assert counts["train_from_input"] + counts["validation"] + counts["test"] == 40
    assert counts["train"] == counts["train_from_input"] + counts["replay_added"] and counts["replay_added"] > 0


def test_tunesmith_check_accepts_a_registered_format(faq_format, tmp_path, tiny_model):
    result = CliRunner().invoke(app, ["check", faq_config(tmp_path, tiny_model, faq_rows(40))])
    assert result.exit_code == 0, result.output
    assert "40 rows" in result.output and "none rejected" in result.output
