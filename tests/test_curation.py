import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import LABELS, SHARED_DATA, small_ticket_rows, ticket_rows, write_jsonl
from tunesmith.config.schema import DataConfig
from tunesmith.curation.curate import curate, data_fingerprint
from tunesmith.curation.load import load_records
from tunesmith.curation.readers import InputFileError
from tunesmith.curation.records import Rejected, by_reason, make_example, read_examples
from tunesmith.curation.split import stratified_split
from tunesmith.models.load import load_tokenizer

GOOD = {"text": "My invoice is wrong", "label": "billing"}

# kind -> (a bad classification row as JSONL text or object, the reject kind it must produce)
BAD_ROWS = {
    "malformed JSON": ('{"text": "no closing brace", "label": "billing"', "malformed_json"),
    "missing field": ({"text": "where is the label"}, "missing_field"),
    "wrong type": ({"text": 42, "label": "general"}, "wrong_type"),
    "empty text": ({"text": "   ", "label": "general"}, "empty_text"),
    "unknown label": ({"text": "please help", "label": "billling"}, "unknown_label"),
    "not an object": ("[1, 2, 3]", "not_object"),
}


def _tokenizer(tiny_model):
    return load_tokenizer(str(tiny_model))


@pytest.mark.parametrize("name", list(BAD_ROWS))
def test_each_bad_row_is_rejected_with_file_line_and_reason(tmp_path, name):
    bad, kind = BAD_ROWS[name]
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, bad, GOOD | {"text": "other"}])
    result = load_records(path, "classification", LABELS)
    assert result.read == 3
    assert len(result.examples) + len(result.rejected) == result.read
    (rejected,) = result.rejected
    assert (rejected.source, rejected.kind) == (f"{path} line 2", kind)


def test_reject_messages_name_the_field():
    path = Path("in.jsonl")
    rows = [BAD_ROWS["unknown label"][0], BAD_ROWS["wrong type"][0], BAD_ROWS["missing field"][0]]
    messages = []
    for i, row in enumerate(rows, 1):
        from tunesmith.formats.base import RowError
        from tunesmith.formats.classification import parse as parse_classification

        with pytest.raises(RowError) as err:
            parse_classification(row, LABELS)
        messages.append(f"{path} line {i}: {err.value.reason}")
    assert (
        messages[0] == 'in.jsonl line 1: field "label" is "billling", not one of: urgent, billing, technical, general'
    )
    assert 'field "text" must be a string' in messages[1]
    assert 'missing field "label"' in messages[2]


def test_undecodable_bytes_are_rejected(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"text": "caf\xe9", "label": "general"}\n')
    result = load_records(path, "classification", LABELS)
    assert (result.read, len(result.examples), len(result.rejected)) == (2, 1, 1)
    assert result.rejected[0].kind == "undecodable" and result.rejected[0].source.endswith("line 2")


def test_blank_lines_are_not_rows(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, "", "   ", GOOD | {"text": "again"}])
    result = load_records(path, "classification", LABELS)
    assert result.read == 2 and len(result.examples) == 2


CHAT_OK = {
    "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
    ]
}


@pytest.mark.parametrize(
    ("messages", "kind"),
    [
        ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "u"}], "invalid_role_order"),
        ([{"role": "user", "content": "u"}, {"role": "user", "content": "u"}], "invalid_role_order"),
        ([{"role": "user", "content": "u"}], "invalid_role_order"),
        ([{"role": "user", "content": "u"}, {"role": "bot", "content": "a"}], "invalid_role"),
        ([{"role": "user", "content": "u"}, {"role": "assistant", "content": ""}], "empty_text"),
        ("hello", "wrong_type"),
    ],
)
def test_chat_rows_are_checked_turn_by_turn(tmp_path, messages, kind):
    result = load_records(write_jsonl(tmp_path / "chat.jsonl", [CHAT_OK, {"messages": messages}]), "chat")
    assert len(result.examples) == 1 and len(result.examples[0].messages) == 5
    assert result.rejected[0].kind == kind


def test_every_input_format_normalizes_to_chat_messages(tmp_path):
    instruction = load_records(
        write_jsonl(tmp_path / "i.jsonl", [{"instruction": "Translate", "input": "chat", "output": "cat"}]),
        "instruction",
    )
    completion = load_records(
        write_jsonl(tmp_path / "c.jsonl", [{"prompt": "2+2=", "completion": "4", "category": "math"}]), "completion"
    )
    classification = load_records(write_jsonl(tmp_path / "t.jsonl", [GOOD]), "classification", LABELS)
    assert instruction.examples[0].messages == [
        {"role": "user", "content": "Translate\n\nchat"},
        {"role": "assistant", "content": "cat"},
    ]
    assert (
        completion.examples[0].messages[-1] == {"role": "assistant", "content": "4"}
        and completion.examples[0].category == "math"
    )
    assert classification.examples[0].label == "billing" and classification.examples[0].answer == "billing"
    again = load_records(
        write_jsonl(tmp_path / "t2.jsonl", [{"label": "billing", "text": "my  INVOICE is wrong"}]),
        "classification",
        LABELS,
    )
    assert again.examples[0].id == classification.examples[0].id  # content hash, stable across files


def _write_all_file_formats(tmp_path: Path, rows: list[dict]) -> dict[str, Path]:
    import pandas as pd
    from datasets import Dataset

    (tmp_path / "rows.json").write_text(json.dumps(rows))
    with (tmp_path / "rows.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pd.DataFrame(rows).to_parquet(tmp_path / "rows.parquet")
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "rows_dataset"))
    return {
        "jsonl": write_jsonl(tmp_path / "rows.jsonl", rows),
        "json": tmp_path / "rows.json",
        "csv": tmp_path / "rows.csv",
        "parquet": tmp_path / "rows.parquet",
        "datasets": tmp_path / "rows_dataset",
    }


def test_jsonl_json_csv_parquet_and_datasets_folders_read_the_same(tmp_path):
    rows = [{"body": f"ticket number {i}", "category": LABELS[i % 4]} for i in range(8)]
    rows[3]["body"] = ""  # one empty text in every format
    ids = {}
    for kind, path in _write_all_file_formats(tmp_path, rows).items():
        result = load_records(path, "classification", LABELS, columns={"text": "body", "label": "category"})
        assert result.read == 8, kind
        assert [r.kind for r in result.rejected] == ["empty_text"], kind
        expected = {"jsonl": "line 4", "json": "item 4", "csv": "line 5", "parquet": "row 4", "datasets": "row 4"}[kind]
        assert result.rejected[0].source.endswith(expected), kind  # the csv header is line 1
        ids[kind] = [e.id for e in result.examples]
    assert len({tuple(v) for v in ids.values()}) == 1


def test_csv_rows_with_extra_values_and_bad_bytes_are_rejected(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes(b'text,label\nfine,billing\n"too",many,values\ncaf\xe9,general\n')
    result = load_records(path, "classification", LABELS)
    assert result.read == 3 and len(result.examples) == 1
    assert [(r.kind, r.source.split()[-1]) for r in result.rejected] == [("malformed_row", "3"), ("undecodable", "4")]


def test_a_broken_json_file_is_named_with_line_and_column(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[{"text": "a", "label": "billing"},\n {"text": oops}]')
    with pytest.raises(InputFileError, match=r"rows.json line 2 column 11"):
        load_records(path, "classification", LABELS)


def test_fields_the_format_does_not_read_are_skipped_and_counted_or_rejected_in_strict_mode(tmp_path):
    rows = [GOOD | {"slots": {"x": 1}, "domain": "bank"}, GOOD | {"text": "other", "slots": {}}, {**GOOD, "id": 3}]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    loose = load_records(path, "classification", LABELS)
    assert len(loose.examples) == 3 and not loose.rejected
    assert loose.ignored_fields == {"slots": 2, "domain": 1, "id": 1}
    strict = load_records(path, "classification", LABELS, unknown_fields="reject")
    assert [r.kind for r in strict.rejected] == ["unexpected_field"] * 3
    assert "unexpected field(s): domain, slots" in strict.rejected[0].reason
    named = load_records(
        path, "classification", LABELS, ignore_fields=["slots", "domain", "id"], unknown_fields="reject"
    )
    assert len(named.examples) == 3 and not named.ignored_fields


def test_the_curation_report_names_skipped_fields_with_row_counts(tmp_path, tiny_model):
    rows = [{"text": f"{label} question number {i}", "label": label, "slots": [], "domain": "x"}
            for label in LABELS for i in range(12)]  # fmt: skip
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    data = curate(DataConfig(path=path, labels=LABELS), _tokenizer(tiny_model), "Classify.", None, tmp_path / "out")
    assert data.ignored_fields == {"domain": 48, "slots": 48}
    report = Path(data.report_path).read_text()
    assert "`domain` (48 rows), `slots` (48 rows)" in report and "data.unknown_fields: reject" in report
    assert data.counts["rejected_invalid"] == 0


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


def _accounted(counts: dict) -> int:
    keys = [
        "rejected_invalid",
        "exact_duplicates",
        "near_duplicates",
        "semantic_duplicates",
        "leakage_removed",
        "balancing_dropped",
        "train_from_input",
        "validation",
        "test",
    ]
    return sum(counts[k] for k in keys)


def test_curate_accounts_for_every_row_and_writes_its_files(tmp_path, tiny_model, small_tickets):
    rows = [json.loads(line) for line in small_tickets.read_text().splitlines()]
    rows += [rows[0], {"text": "broken", "label": "nope"}, "{oops"]
    config = DataConfig(path=write_jsonl(tmp_path / "in.jsonl", rows), labels=LABELS)
    data = curate(config, _tokenizer(tiny_model), "Classify.", 256, tmp_path / "out")
    c = data.counts
    assert c["read"] == 163 and _accounted(c) == 163
    assert (c["rejected_invalid"], c["exact_duplicates"]) == (2, 1)
    assert data.rejected_by_kind == {"exact_duplicate": 1, "malformed_json": 1, "unknown_label": 1}
    rejects = [json.loads(line) for line in Path(data.rejects_path).read_text().splitlines()]
    assert len(rejects) == sum(data.rejected_by_kind.values())
    assert data.ok and data.validation["success"]
    for name in (
        "curation_report.md",
        "curation_report.json",
        "gx_validation.json",
        "dedup_clusters.json",
        "conflicts.json",
    ):
        assert (tmp_path / "out" / name).is_file()
    assert (Path(data.docs_dir) / "index.html").is_file()
    assert "Every row accounted for: 163 read = 163" in Path(data.report_path).read_text()
    assert data.data_hash == curate(config, _tokenizer(tiny_model), "Classify.", 256, tmp_path / "again").data_hash


def test_a_test_file_is_the_test_split_and_its_copies_leave_train(tmp_path, tiny_model, small_tickets):
    rows = [json.loads(line) for line in small_tickets.read_text().splitlines()]
    held_out = rows[:40] + [rows[0], {"text": "broken", "label": "nope"}, {"text": "x " * 300, "label": "billing"}]
    config = DataConfig(
        path=write_jsonl(tmp_path / "in.jsonl", rows),
        test_path=write_jsonl(tmp_path / "test.jsonl", held_out),
        labels=LABELS,
    )
    assert (config.split.train, config.split.validation, config.split.test) == (0.9, 0.1, 0.0)
    data = curate(config, _tokenizer(tiny_model), "Classify.", 256, tmp_path / "out")
    c = data.counts
    # The test file is scored as published, its over-long row included; the invalid row and the repeat go.
    assert (c["test_file_read"], c["test_file_rejected"], c["test_file_repeats"], c["test"]) == (43, 1, 1, 41)
    assert c["leakage_removed"] >= 40  # the training and validation copies of the 40 test rows
    assert c["read"] + c["test_file_read"] == _accounted(c) + c["test_file_rejected"] + c["test_file_repeats"]

    def inputs(path: str) -> set[str]:
        return {json.loads(line)["messages"][0]["content"] for line in Path(path).read_text().splitlines()}

    assert not inputs(data.test_path) & (inputs(data.train_path) | inputs(data.validation_path))
    assert data.ok, data.problems
    assert "test.jsonl line 42" in Path(data.rejects_path).read_text()
    assert "Every row accounted for: 203 read = 203" in Path(data.report_path).read_text()


def test_a_test_file_needs_no_test_fraction_and_usable_rows(tmp_path, tiny_model, small_tickets):
    with pytest.raises(ValueError, match="data.split.test must be 0"):
        DataConfig(path=small_tickets, test_path=small_tickets, labels=LABELS,
                   split={"train": 0.8, "validation": 0.1, "test": 0.1})  # fmt: skip
    config = DataConfig(
        path=small_tickets, test_path=write_jsonl(tmp_path / "test.jsonl", [{"text": "hi", "label": "nope"}]),
        labels=LABELS,
    )  # fmt: skip
    data = curate(config, _tokenizer(tiny_model), "Classify.", 256, tmp_path / "out")
    assert not data.ok and any("no usable test rows" in p for p in data.problems)


def test_too_many_rejects_stop_curation(tmp_path, tiny_model):
    rows = ticket_rows()[:40] + [{"text": "x", "label": "bad"}] * 3
    config = DataConfig(path=write_jsonl(tmp_path / "in.jsonl", rows), labels=LABELS, min_examples_per_class=1)
    data = curate(config, _tokenizer(tiny_model), "Classify.", 256, tmp_path / "out")
    assert not data.ok
    assert "3 of 43 rows rejected" in data.problems[0] and "lines 41, 42, 43" in data.problems[0]


def test_examples_longer_than_the_limit_are_rejected(tmp_path, tiny_model):
    rows = ticket_rows()[:20] + [{"text": "long " * 400, "label": "billing"}]
    config = DataConfig(
        path=write_jsonl(tmp_path / "in.jsonl", rows),
        labels=LABELS,
        max_rejected_fraction=1.0,
        min_examples_per_class=1,
    )
    data = curate(config, _tokenizer(tiny_model), "Classify.", 200, tmp_path / "out")
    assert data.rejected_by_kind == {"too_long": 1}
    assert "longer than training.max_seq_length 200" in Path(data.rejects_path).read_text()


def test_fingerprint_ignores_order():
    examples = _examples({"urgent": 3, "billing": 2})
    assert data_fingerprint(examples) == data_fingerprint(list(reversed(examples)))
    assert data_fingerprint(examples) != data_fingerprint(examples[:-1])


@pytest.mark.skipif(not (SHARED_DATA / "banking77").is_dir(), reason="../shared/data/banking77 is not present")
def test_banking77_curates_with_every_row_accounted_for(tmp_path, tiny_model):
    path = SHARED_DATA / "banking77" / "train.jsonl"
    labels = sorted({json.loads(line)["label"] for line in path.read_text().splitlines()})
    config = DataConfig(path=path, labels=labels)
    data = curate(config, _tokenizer(tiny_model), "Classify the banking query.", 256, tmp_path / "out")
    c = data.counts
    assert c["read"] == 10003 and _accounted(c) == c["read"]
    assert (
        len(Path(data.rejects_path).read_text().splitlines())
        == c["read"] - c["train_from_input"] - c["validation"] - c["test"]
    )
    assert len(data.class_counts["test"]) == 77 and data.validation["success"], data.validation["summary"]


def test_replay_is_mixed_into_train_only_and_tagged(tmp_path, tiny_model, small_tickets):
    config = DataConfig(path=small_tickets, labels=LABELS, replay={"fraction": 0.1})
    data = curate(config, _tokenizer(tiny_model), "Classify.", 256, tmp_path / "out")
    train = [json.loads(line) for line in Path(data.train_path).read_text().splitlines()]
    replayed = [r for r in train if r["origin"] == "replay"]
    assert data.counts["replay_added"] == len(replayed) == round(0.1 * (len(train) - len(replayed)) / 0.9)
    assert all(r["label"] is None for r in replayed)
    for split in (data.validation_path, data.test_path):
        assert all(json.loads(line)["origin"] == "task" for line in Path(split).read_text().splitlines())
    assert _accounted(data.counts) == data.counts["read"]


def test_replay_leaves_the_task_splits_as_they_were(tmp_path, tiny_model):
    # A task of short rows beside longer replay rows: the derived length grows for the replay rows only, and the
    # task keeps the same rows and splits, so runs with and without replay are compared on the same test examples.
    # One task row far longer than the rest: the task's own rule drops it as an outlier; the replay rows' lengths
    # must not bring it back in.
    outlier = {"instruction": "Add these numbers: " + " + ".join(str(i) for i in range(60)), "input": "",
               "output": "1770"}  # fmt: skip
    path = write_jsonl(tmp_path / "task.jsonl", _task_rows("instruction") + [outlier])
    curated = {}
    for fraction in (0.0, 0.2):
        config = DataConfig(path=path, format="instruction", replay={"fraction": fraction})
        curated[fraction] = curate(config, _tokenizer(tiny_model), "Answer.", None, tmp_path / f"out-{fraction}")
    without, replayed = curated.values()
    for split in ("validation_path", "test_path"):
        assert Path(getattr(without, split)).read_text() == Path(getattr(replayed, split)).read_text()
    task_rows = [e.id for e in read_examples(Path(replayed.train_path)) if e.origin == "task"]
    # in the same order too: what reads the task's rows in order (the decision's few-shot examples) is unchanged
    assert task_rows == [e.id for e in read_examples(Path(without.train_path))]
    assert replayed.max_seq_length > without.max_seq_length
    assert without.counts["rejected_invalid"] == replayed.counts["rejected_invalid"] == 1  # the outlier, both times
    assert "to fit the replay rows" in replayed.max_seq_length_source


def _task_rows(kind: str) -> list[dict]:
    """Short task rows of each format (shorter than most bundled replay rows)."""
    if kind == "classification":
        return small_ticket_rows()
    if kind == "instruction":
        return [{"instruction": f"Add {i} and {i + 1}.", "input": "", "output": str(2 * i + 1)} for i in range(120)]
    return [{"messages": [{"role": "user", "content": f"Say the number {i}."},
                          {"role": "assistant", "content": f"{i}"}]} for i in range(120)]  # fmt: skip


@pytest.mark.parametrize("kind", ["classification", "instruction", "chat"])
def test_replay_trains_as_general_data_in_every_format(tmp_path, tiny_model, kind):
    from tunesmith.prompts import full_messages

    labels = LABELS if kind == "classification" else None
    path = write_jsonl(tmp_path / f"{kind}.jsonl", _task_rows(kind))
    config = DataConfig(path=path, format=kind, labels=labels, replay={"fraction": 0.2})
    data = curate(config, _tokenizer(tiny_model), "Classify the ticket.", None, tmp_path / "out")
    # The replay rows are kept out of the task's label checks, and the derived max_seq_length makes room for them.
    assert data.ok and data.validation["success"], data.validation["summary"]
    assert data.counts["replay_rejected"] == 0 and data.counts["replay_added"] > 0
    train = read_examples(Path(data.train_path))
    replayed = [e for e in train if e.origin == "replay"]
    assert len(replayed) == data.counts["replay_added"] == round(0.2 * (len(train) - len(replayed)) / 0.8)
    # Trained as what they are: not under the task's system prompt (a classifier's label list)
    assert all(full_messages(e, "Classify the ticket.")[0]["role"] != "system" for e in replayed)
    task = next(e for e in train if e.origin == "task")
    assert full_messages(task, "Classify the ticket.")[0] == {"role": "system", "content": "Classify the ticket."}
    if kind == "classification":
        assert set(data.class_counts["train"]) == set(LABELS)  # replay rows are no class of their own
    assert _accounted(data.counts) == data.counts["read"]


def test_gx_failure_lists_the_failed_expectations_with_examples(tmp_path, tiny_model, small_tickets):
    config = DataConfig(path=small_tickets, labels=LABELS + ["spam"], min_examples_per_class=50)
    data = curate(config, _tokenizer(tiny_model), "Classify.", 256, tmp_path / "out")
    assert not data.ok and not data.validation["success"]
    failed = {(f["frame"], f["expectation"]) for f in data.validation["failures"]}
    assert ("curated", "expect_column_values_to_be_between") in failed  # 40 per class < 50
    assert ("curated", "expect_column_distinct_values_to_contain_set") in failed  # no "spam" examples (warning)
    gx = next(p for p in data.problems if "Great Expectations validation failed" in p)
    assert "class_count" in gx


def test_balancing_cap_drops_go_to_rejects(tmp_path, tiny_model):
    rows = [r for r in ticket_rows() if r["label"] in ("urgent", "billing")]
    rows = [r for r in rows if r["label"] == "urgent"][:90] + [r for r in rows if r["label"] == "billing"][:30]
    config = DataConfig(
        path=write_jsonl(tmp_path / "in.jsonl", rows), labels=LABELS, balance={"strategy": "cap", "cap_ratio": 2}
    )
    data = curate(config, _tokenizer(tiny_model), "Classify.", 256, tmp_path / "out")
    assert data.balance["after"]["urgent"] == 2 * data.balance["after"]["billing"]
    assert data.rejected_by_kind.get("balancing") == data.counts["balancing_dropped"] > 0
    assert _accounted(data.counts) == data.counts["read"]


def test_rejected_rows_are_listed_once_per_reason_and_over_long_ones_as_a_range():
    rows = [Rejected(f"d.jsonl line {i}", "too_long", f"example is {n} tokens, longer than training.max_seq_length 256")
            for i, n in ((1, 300), (2, 754), (3, 257))]  # fmt: skip
    rows += [Rejected(f"d.jsonl line {i}", "invalid", 'field "label" is "x"') for i in (4, 5)]
    rows += [Rejected("d.jsonl line 6", "invalid", "empty text")]
    assert by_reason(rows, shown=2) == [
        "3 rows: examples of 257 to 754 tokens, longer than training.max_seq_length 256"
        " (d.jsonl lines 1, 2, ... 1 more)",
        '2 rows: field "label" is "x" (d.jsonl lines 4, 5)',
        "d.jsonl line 6: empty text",
    ]


def test_max_seq_length_is_derived_from_the_data_when_unset():
    from tunesmith.curation.curate import derived_max_length

    # Every example fits when the longest is within twice the 99th percentile; rounded up to a multiple of 8.
    assert derived_max_length([10, 20, 30, 41])[0] == 48
    # One outlier far beyond the rest: the 99th percentile, and the outlier is over-long.
    lengths = [20] * 200 + [500]
    length, why = derived_max_length(lengths)
    assert length == 24 and "99th percentile" in why
    assert derived_max_length([5000, 6000], context=2048)[0] == 2048


def test_a_long_label_set_stays_out_of_the_training_prompt(tmp_path, tiny_model):
    """77 labels as banking77 has: the untrained prompt lists them, the training prompt does not, so examples are
    as long as the messages themselves and curation derives a short max_seq_length instead of rejecting rows."""
    from tunesmith.config import load_config
    from tunesmith.prompts import training_prompt, untrained_prompt

    labels = [f"intent_{i}?" for i in range(77)]
    rows = [{"text": f"question {i} about {label}", "label": label} for label in labels for i in range(6)]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    config_path = tmp_path / "run.yaml"
    config_path.write_text(
        # replay off: the derived length compared here is the task's own (replay would widen both to its rows)
        json.dumps({"name": "t", "model": str(tiny_model), "data": {"path": str(path), "labels": labels,
                                                                   "replay": {"fraction": 0}}})
    )  # fmt: skip
    config = load_config(config_path)
    assert all(label in untrained_prompt(config) for label in labels)
    assert not any(label in training_prompt(config) for label in labels)
    tokenizer = _tokenizer(tiny_model)
    data = curate(config.data, tokenizer, training_prompt(config), None, tmp_path / "out")
    assert data.counts["rejected_invalid"] == 0
    assert data.max_seq_length_source.startswith("derived from the data")
    listed = curate(config.data, tokenizer, untrained_prompt(config), None, tmp_path / "listed")
    assert listed.max_seq_length > 4 * data.max_seq_length  # what every example would cost with the list
