import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tasks.config.schema import DataConfig
from tasks.curation.curate import curate, data_fingerprint
from tasks.curation.dedup import exact_dedup
from tasks.curation.load import load_jsonl
from tasks.curation.records import make_example
from tasks.curation.split import stratified_split
from tasks.curation.validate import suite_path, validate_frame
from tasks.models.load import load_tokenizer
from tests.conftest import LABELS, write_jsonl

GOOD = {"text": "My invoice is wrong", "label": "billing"}

BAD_ROWS = {
    "malformed JSON": '{"text": "no closing brace", "label": "billing"',
    "missing field": {"text": "where is the label"},
    "unexpected field": {"text": "hello", "label": "general", "priority": 3},
    "wrong type": {"text": 42, "label": "general"},
    "empty text": {"text": "   ", "label": "general"},
    "unknown label": {"text": "please help", "label": "billling"},
    "not an object": "[1, 2, 3]",
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_each_bad_row_is_rejected_with_file_line_and_reason(tmp_path, kind):
    bad = BAD_ROWS[kind]
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, bad if isinstance(bad, dict) else bad, GOOD | {"text": "other"}])
    result = load_jsonl(path, "classification", LABELS)
    assert result.read == 3
    assert len(result.examples) + len(result.rejected) == result.read
    assert len(result.rejected) == 1
    rejected = result.rejected[0]
    assert rejected.source == f"{path} line 2"


def test_reject_messages_name_the_field(tmp_path):
    path = write_jsonl(
        tmp_path / "data.jsonl", [BAD_ROWS["unknown label"], BAD_ROWS["wrong type"], BAD_ROWS["missing field"]]
    )
    messages = [r.message() for r in load_jsonl(path, "classification", LABELS).rejected]
    assert messages[0] == f'{path} line 1: field "label" is "billling", not one of: urgent, billing, technical, general'
    assert 'field "text" must be a string' in messages[1]
    assert 'missing field "label"' in messages[2]


def test_undecodable_bytes_are_rejected(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"text": "caf\xe9", "label": "general"}\n')
    result = load_jsonl(path, "classification", LABELS)
    assert (result.read, len(result.examples), len(result.rejected)) == (2, 1, 1)
    assert "undecodable" in result.rejected[0].reason


def test_blank_lines_are_not_rows(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, "", "   ", GOOD | {"text": "again"}])
    result = load_jsonl(path, "classification", LABELS)
    assert result.read == 2 and len(result.examples) == 2


def test_chat_rows_need_valid_role_order(tmp_path):
    ok = {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a"},
        ]
    }
    bad = {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "u"}]}
    result = load_jsonl(write_jsonl(tmp_path / "chat.jsonl", [ok, bad]), "chat")
    assert len(result.examples) == 1 and "invalid role order" in result.rejected[0].reason


def test_exact_dedup_ignores_case_and_whitespace_and_reports_conflicts():
    a = make_example(
        [{"role": "user", "content": "Site is DOWN"}, {"role": "assistant", "content": "urgent"}], "f:1", "urgent"
    )
    b = make_example(
        [{"role": "user", "content": "  site is   down "}, {"role": "assistant", "content": "urgent"}], "f:2", "urgent"
    )
    c = make_example(
        [{"role": "user", "content": "site is down"}, {"role": "assistant", "content": "technical"}], "f:3", "technical"
    )
    result = exact_dedup([a, b, c])
    assert [e.source for e in result.kept] == ["f:1", "f:3"]
    assert [(d.source, k.source) for d, k in result.removed] == [("f:2", "f:1")]
    assert len(result.conflicts) == 1 and {e.label for e in result.conflicts[0]} == {"urgent", "technical"}


def _examples(n_per_label: dict[str, int]):
    return [
        make_example(
            [{"role": "user", "content": f"{label} ticket {i}"}, {"role": "assistant", "content": label}],
            f"f:{label}{i}",
            label,
        )
        for label, n in n_per_label.items()
        for i in range(n)
    ]


def test_split_is_stratified_deterministic_and_disjoint():
    examples = _examples({"urgent": 50, "billing": 30, "technical": 20})
    first = stratified_split(examples, 0.1, 0.2, seed=7)
    again = stratified_split(examples, 0.1, 0.2, seed=7)
    other = stratified_split(examples, 0.1, 0.2, seed=8)
    assert [e.id for e in first.test] == [e.id for e in again.test]
    assert [e.id for e in first.test] != [e.id for e in other.test]
    assert Counter(e.label for e in first.test) == {"urgent": 10, "billing": 6, "technical": 4}
    assert Counter(e.label for e in first.validation) == {"urgent": 5, "billing": 3, "technical": 2}
    ids = [{e.id for e in part} for part in (first.train, first.validation, first.test)]
    assert sum(map(len, ids)) == len(examples) == len(set().union(*ids))


def test_a_tiny_class_stays_in_train():
    split = stratified_split(_examples({"urgent": 20, "general": 1}), 0.1, 0.1, seed=0)
    assert [e.label for e in split.train].count("general") == 1


def test_gx_suite_passes_clean_data_and_fails_bad_labels():
    frame = pd.DataFrame(
        {
            "id": ["a", "b"],
            "prompt": ["x", "y"],
            "answer": ["urgent", "billing"],
            "label": ["urgent", "billing"],
            "n_tokens": [5, 6],
        }
    )
    params = {"labels": LABELS, "min_tokens": 1, "max_tokens": 64, "min_rows": 1}
    assert validate_frame(frame, suite_path("classification"), params).success
    frame.loc[1, "label"] = "spam"
    report = validate_frame(frame, suite_path("classification"), params)
    assert not report.success
    failed = {f["expectation"]: f for f in report.failures}
    assert failed["expect_column_values_to_be_in_set"]["examples"] == ["spam"]
    assert "expect_column_values_to_be_in_set on label" in report.summary()


def test_curate_accounts_for_every_row_and_writes_splits(tmp_path, tiny_model, small_tickets):
    rows = [json.loads(line) for line in small_tickets.read_text().splitlines()]
    rows += [rows[0], {"text": "broken", "label": "nope"}, "{oops"]
    data_path = write_jsonl(tmp_path / "in.jsonl", rows)
    config = DataConfig(path=data_path, labels=LABELS, max_rejected_fraction=0.05)
    data = curate(config, load_tokenizer(str(tiny_model)), "Classify.", 256, tmp_path / "out")
    c = data.counts
    assert c["read"] == 163
    assert c["kept"] + c["rejected"] + c["exact_duplicates"] == c["read"]
    assert (c["rejected"], c["exact_duplicates"]) == (2, 1)
    assert c["train"] + c["validation"] + c["test"] == c["kept"]
    rejects = [json.loads(line) for line in Path(data.rejects_path).read_text().splitlines()]
    assert len(rejects) == 3 and any("exact duplicate" in r["reason"] for r in rejects)
    assert data.ok and data.validation["success"]
    assert (
        data.data_hash
        == curate(config, load_tokenizer(str(tiny_model)), "Classify.", 256, tmp_path / "again").data_hash
    )


def test_too_many_rejects_stop_curation(tmp_path, tiny_model):
    rows = [{"text": f"ticket {i}", "label": "billing"} for i in range(10)] + [{"text": "x", "label": "bad"}]
    config = DataConfig(path=write_jsonl(tmp_path / "in.jsonl", rows), labels=LABELS, max_rejected_fraction=0.05)
    data = curate(config, load_tokenizer(str(tiny_model)), "Classify.", 256, tmp_path / "out")
    assert not data.ok
    assert "1 of 11 rows rejected" in data.problems[0] and "line 11" in data.problems[0]


def test_examples_longer_than_the_limit_are_rejected(tmp_path, tiny_model):
    rows = [{"text": "short", "label": "billing"}, {"text": "long " * 400, "label": "billing"}]
    config = DataConfig(path=write_jsonl(tmp_path / "in.jsonl", rows), labels=LABELS, max_rejected_fraction=1.0)
    data = curate(config, load_tokenizer(str(tiny_model)), "Classify.", 64, tmp_path / "out")
    assert data.counts["rejected"] == 1
    assert "longer than the maximum 64" in Path(data.rejects_path).read_text()


def test_fingerprint_ignores_order():
    examples = _examples({"urgent": 3, "billing": 2})
    assert data_fingerprint(examples) == data_fingerprint(list(reversed(examples)))
    assert data_fingerprint(examples) != data_fingerprint(examples[:-1])
