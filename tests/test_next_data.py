"""What to collect next: failures on the test split ranked into suggestions, with the wrong examples to look at."""

import json

from tunesmith.curation.records import make_example
from tunesmith.evaluation.next_data import classification_suggestions, generation_suggestions, write_next_data


def _tests(labels: list[str], n: int) -> list:
    return [
        make_example(
            [{"role": "user", "content": f"{label} request {i}"}, {"role": "assistant", "content": label}],
            f"t:{label}:{i}",
            label,
        )  # fmt: skip
        for label in labels
        for i in range(n)
    ]


def test_a_planted_under_represented_label_is_ranked_first():
    """Label rare, with 5 training examples against 100 for the others, is missed 15 times in 30 (taken for
    common); every other label is missed twice. Rare is first, below the rest beyond chance, with the examples to
    reach the median; the others, each missed as often as chance allows, are not told apart from the rest."""
    labels = ["common", "other", "third", "rare"]
    tests = _tests(labels, 30)
    predictions = []
    for e in tests:
        index = int(e.source.rsplit(":", 1)[1])
        wrong = index < (15 if e.label == "rare" else 2)
        predictions.append(("common" if e.label == "rare" else "rare") if wrong else e.label)
    counts = {"common": 100, "other": 100, "third": 100, "rare": 5}
    ranked = classification_suggestions(tests, predictions, counts)
    first = ranked[0]
    assert first.group == "rare" and first.below_rest and first.errors == 15
    assert first.add == 95  # up to the median label's 100 training examples
    assert first.confused_with[0] == ("common", 15)
    assert len(first.wrong) == 5 and all(w["label"] == "rare" and w["predicted"] == "common" for w in first.wrong)
    assert first.interval[0] < 0.5 < first.interval[1]  # recall 0.5, Wilson interval around it
    assert [s.group for s in ranked[1:]] == ["common", "other", "third"]
    assert not any(s.below_rest for s in ranked[1:]) and all(s.add == 20 for s in ranked[1:])
    assert "add about 95 examples of rare; it is confused with common (15)" in first.sentence()


def test_next_data_files_list_the_suggestions_and_the_rows_to_look_at(tmp_path):
    tests = _tests(["a", "b"], 10)
    predictions = ["b" if e.label == "a" and e.source.endswith((":0", ":1", ":2")) else e.label for e in tests]
    ranked = classification_suggestions(tests, predictions, {"a": 40, "b": 40})
    md, jsonl = write_next_data(ranked, tmp_path, "classification")
    text = md.read_text()
    assert "## 1. add about 20 examples of a; it is confused with b (3)" in text
    assert "3 of 10 test examples wrong; recall 0.70" in text and "`a request 0` -> b" in text
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["input"] for r in rows] == ["a request 0", "a request 1", "a request 2"] and rows[0]["rank"] == 1
    none_wrong = write_next_data([], tmp_path / "clean", "classification")[0].read_text()
    assert "no errors" in none_wrong


def test_generation_failures_are_grouped_by_category_and_the_weak_one_ranked_first():
    tests = []
    for category in ("open_qa", "brainstorming", "summarization"):
        for i in range(20):
            messages = [{"role": "user", "content": f"{category} task {i}"}, {"role": "assistant", "content": "a"}]
            tests.append(make_example(messages, f"g:{category}:{i}", category=category))
    scores = [0.2 + 0.01 * i if e.category == "summarization" else 0.6 + 0.01 * i
              for e, i in zip(tests, list(range(20)) * 3, strict=True)]  # fmt: skip
    ranked = generation_suggestions(tests, scores, ["x"] * len(tests), {"open_qa": 50, "brainstorming": 50,
                                                                         "summarization": 50})  # fmt: skip
    assert ranked[0].group == "summarization" and ranked[0].kind == "category" and ranked[0].below_rest
    assert ranked[0].wrong[0]["score"] == 0.2 and len(ranked[0].wrong) == 5


def test_without_categories_generation_failures_are_grouped_by_prompt_clusters():
    tests, scores = [], []
    for topic, score in (("invoice refund payment billing", 0.1), ("weather forecast rain sunny", 0.8)):
        for i in range(15):
            tests.append(make_example([{"role": "user", "content": f"{topic} question {i}"},
                                       {"role": "assistant", "content": "answer"}], f"c:{topic}:{i}"))  # fmt: skip
            scores.append(score + 0.001 * i)
    ranked = generation_suggestions(tests, scores, ["x"] * len(tests), {}, clusters=2)
    assert ranked[0].kind == "cluster" and ranked[0].below_rest
    assert all("invoice" in w["input"] for w in ranked[0].wrong)
