import json

from typer.testing import CliRunner

from tests.test_training import CPU32, min_answer_probability
from tunesmith.config.schema import TrainingConfig
from tunesmith.curation.records import make_example, write_examples
from tunesmith.flows.cli import app
from tunesmith.serving.predict import Predictor, read_requests
from tunesmith.training.inference import load_trained
from tunesmith.training.sft import train_files

TEXTS = ["site down now", "refund my card", "app crashes on login", "office hours?"]


def _adapter(tmp_path, tiny_model, name: str, answers: list[str], labels: list[str] | None = None) -> str:
    examples = [
        make_example([{"role": "user", "content": t}, {"role": "assistant", "content": a}], f"{name}:{i}")
        for i, (t, a) in enumerate(zip(TEXTS, answers, strict=True))
    ]
    train = write_examples(examples * 4, tmp_path / f"{name}-train.jsonl")
    # 80 steps with a cosine decay: the lowest answer probability was 0.79 to 0.96 over seven training seeds
    # (40 steps at a constant rate left the upper-case answers at 0.43 to 0.58, too close to 0.5).
    config = TrainingConfig(
        max_steps=80,
        learning_rate=1e-2,
        batch_size=4,
        warmup_ratio=0.0,
        lr_scheduler="cosine",
        eval_steps=40,
        early_stopping_patience=None,
    )
    trained = train_files(
        str(tiny_model), str(train), str(train), "Answer.", config, "lora", CPU32, tmp_path / name,
        manifest={"labels": labels},
    )  # fmt: skip
    # Every answer above probability 0.5 makes it the greedy reply on any CPU (see min_answer_probability): that
    # is what lets the tests below expect these exact strings.
    model, tokenizer = load_trained(str(tiny_model), "lora", trained.output_dir, CPU32)
    assert min_answer_probability(model, tokenizer, examples, "Answer.", answers) > 0.5
    return trained.output_dir


def test_a_classifier_answers_with_one_of_its_labels_and_its_probability(tmp_path, tiny_model):
    """A model fine-tuned on labelled data answers with a label (scored as evaluation scores them), never free
    text, with the probability of that reply; a prompt it never saw still gets one of the labels."""
    labels = ["urgent", "billing", "technical", "general"]
    folder = _adapter(tmp_path, tiny_model, "classifier", labels, labels=labels)
    predictor = Predictor(folder, precision="float32")
    rows = predictor.predict(list(read_requests([*TEXTS, "completely unrelated words here"])), batch_size=2)
    # The learned four: each answer's probability is above 0.5 (asserted in _adapter), so it is the chosen label.
    assert [r["output"] for r in rows[:4]] == labels
    assert all(0.5 < r["probability"] <= 1.0 for r in rows[:4])
    assert rows[4]["output"] in labels and 0.0 < rows[4]["probability"] <= 1.0
    result = CliRunner().invoke(app, ["predict", "--model", folder], input="refund my card\n")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output.strip().splitlines()[-1])
    assert answer["output"] == "billing" and answer["probability"] > 0.5


def test_several_adapters_share_one_base_and_are_chosen_per_request(tmp_path, tiny_model):
    support = _adapter(tmp_path, tiny_model, "support", ["urgent", "billing", "technical", "general"])
    shouting = _adapter(tmp_path, tiny_model, "shouting", ["URGENT", "BILLING", "TECHNICAL", "GENERAL"])
    predictor = Predictor(str(tiny_model), {"support": support, "shouting": shouting}, precision="float32")
    lines = [
        json.dumps({"prompt": "refund my card", "adapter": "shouting"}),
        "refund my card",
        json.dumps({"prompt": "site down now", "adapter": "support"}),
        json.dumps({"prompt": "office hours?", "adapter": "shouting"}),
    ]
    rows = predictor.predict(list(read_requests(lines)), max_new_tokens=8, batch_size=2)
    assert [(r["adapter"], r["output"]) for r in rows] == [
        ("shouting", "BILLING"),
        ("support", "billing"),
        ("support", "urgent"),
        ("shouting", "GENERAL"),
    ]
    base = predictor.predict(list(read_requests([json.dumps({"prompt": "refund my card", "adapter": "base"})])), 8)
    assert base[0]["output"] not in ("billing", "BILLING")


def test_predict_command_reads_a_file_and_writes_json_lines(tmp_path, tiny_model):
    support = _adapter(tmp_path, tiny_model, "support", ["urgent", "billing", "technical", "general"])
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("site down now\napp crashes on login\n")
    result = CliRunner().invoke(app, ["predict", "--model", support, "--input", str(prompts), "--max-new-tokens", "8"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["output"] for r in rows] == ["urgent", "technical"]


def test_predict_names_a_missing_model(tmp_path):
    result = CliRunner().invoke(app, ["predict", "--model", str(tmp_path / "nowhere")], input="hi\n")
    assert result.exit_code == 2 and "no such folder" in result.output
