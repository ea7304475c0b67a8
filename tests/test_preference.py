"""Preference pairs: the prompt split off implicit pairs, rows that cannot be a preference rejected with their
reason, and curation by prompt (duplicates, splits, the GX suite, lengths of both sides)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.conftest import LABELS, SHARED_DATA, small_ticket_rows, write_jsonl
from tunesmith.config import load_config
from tunesmith.config.schema import TrainingConfig
from tunesmith.curation.load import load_records
from tunesmith.curation.records import make_example, read_examples, write_examples
from tunesmith.curation.stage import run_curation
from tunesmith.evaluation.preference import pair_logprobs, preference_accuracy, reward_margins
from tunesmith.formats import RowError, get_format
from tunesmith.models.load import load_model
from tunesmith.prompts import training_prompt
from tunesmith.records import Precision
from tunesmith.training.inference import load_trained
from tunesmith.training.sft import train_files

CPU32 = Precision("cpu", "float32", "tests")

PARSE = get_format("preference").parse


def hh(*turns: str) -> str:
    """A conversation in HH-RLHF's text form, turns alternating from the human."""
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


def test_an_implicit_text_pair_is_split_at_the_last_assistant_turn():
    parsed = PARSE({"chosen": hh("Hi", "Hello!", "Can you help?", "Yes, gladly."),
                    "rejected": hh("Hi", "Hello!", "Can you help?", "No.")}, None)  # fmt: skip
    assert [m["role"] for m in parsed.messages] == ["user", "assistant", "user", "assistant"]
    assert parsed.messages[-1]["content"] == "Yes, gladly." and parsed.rejected == "No."
    assert parsed.messages[2]["content"] == "Can you help?"


def test_an_implicit_message_pair_and_an_explicit_pair_give_the_same_example():
    prompt = [{"role": "user", "content": "Reset my password"}]
    implicit = PARSE({"chosen": [*prompt, {"role": "assistant", "content": "Use the link."}],
                      "rejected": [*prompt, {"role": "assistant", "content": "Figure it out."}]}, None)  # fmt: skip
    explicit = PARSE({"prompt": "Reset my password", "chosen": "Use the link.", "rejected": "Figure it out."}, None)
    assert implicit == explicit


@pytest.mark.parametrize(
    ("row", "kind", "field", "says"),
    [
        ({"chosen": hh("Hi", "Hello", "Help?", "Sure"), "rejected": hh("Hi", "Go away", "Help?", "No")},
         "no_shared_prompt", "rejected", "part at turn 2 of 4/4"),
        ({"chosen": hh("Hi", "Hello", "Help?", "Sure"), "rejected": hh("Hi", "No")},
         "no_shared_prompt", "rejected", "part at turn 2 of 4/2"),
        ({"chosen": hh("Hi", "Same  reply"), "rejected": hh("Hi", "same reply ")}, "identical_pair", "rejected",
         "the same reply"),
        ({"chosen": hh("Hi", ""), "rejected": hh("Hi", "No")}, "empty_text", "chosen", "is empty"),
        ({"chosen": "just a reply", "rejected": "another"}, "wrong_type", "chosen", "without \"Human:\""),
        ({"prompt": "Hi", "chosen": "Hello"}, "missing_field", "rejected", 'missing field "rejected"'),
        ({"prompt": "Hi", "chosen": 3, "rejected": "No"}, "wrong_type", "chosen", "must be the reply as text"),
    ],
)  # fmt: skip
def test_a_row_that_is_not_a_preference_is_rejected_with_its_reason(row, kind, field, says):
    with pytest.raises(RowError) as found:
        PARSE(row, None)
    assert (found.value.kind, found.value.field) == (kind, field) and says in found.value.reason


def ticket_pairs(n: int = 120) -> list[dict]:
    """Support tickets, each answered by its own team (chosen) and by a refusal (rejected)."""
    return [{"prompt": r["text"], "chosen": f"The {r['label']} team will answer this today.",
             "rejected": "I cannot help with that."} for r in small_ticket_rows()[:n]]  # fmt: skip


def test_preference_data_is_curated_by_prompt_with_its_suite(tmp_path, tiny_model):
    rows = ticket_pairs()
    rows += [dict(rows[0], chosen="Another reply to the same ticket.")]  # the same prompt again: one split only
    rows += [{"prompt": "Hi", "chosen": "Hello", "rejected": "Hello"}, {"prompt": "Hi", "chosen": "Hello"}]
    data_path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    config_path = tmp_path / "run.yaml"
    config_path.write_text(f"name: pairs\nmodel: {tiny_model}\noutput_dir: {tmp_path}\ndata:\n  path: {data_path}\n"
                           "  format: preference\n", encoding="utf-8")  # fmt: skip
    config = load_config(str(config_path))
    data = run_curation(config.data, str(tiny_model), False, training_prompt(config), None, tmp_path / "curated")
    assert data.task_type == "preference" and data.validation["success"], data.validation["summary"]
    c = data.counts
    assert c["read"] == 123 and c["rejected_invalid"] == 2 and c["exact_duplicates"] == 1
    assert data.rejected_by_kind["identical_pair"] == 1 and data.rejected_by_kind["missing_field"] == 1
    assert c["replay_added"] == 0 and any("not mixed into preference pairs" in w for w in data.warnings)
    splits = {name: read_examples(getattr(data, f"{name}_path")) for name in ("train", "validation", "test")}
    assert sum(len(s) for s in splits.values()) == c["kept_unique"] == 120
    prompts = [{e.prompt_text for e in s} for s in splits.values()]
    assert not (prompts[0] & prompts[1] or prompts[0] & prompts[2] or prompts[1] & prompts[2])
    assert all(e.rejected == "I cannot help with that." for s in splits.values() for e in s)
    suite = json.loads((tmp_path / "curated" / "gx_validation.json").read_text())
    assert "expect_column_values_to_be_unique" in json.dumps(suite["curated"])


HH_RLHF = SHARED_DATA / "hh_rlhf_harmless"


@pytest.mark.skipif(not HH_RLHF.is_dir(), reason="../shared/data/hh_rlhf_harmless is not present")
def test_hh_rlhf_rows_are_read_with_their_shared_prompts_split_off():
    loaded = load_records(HH_RLHF / "train.jsonl", "preference")
    assert loaded.read == len(loaded.examples) + len(loaded.rejected) == 1400
    # A few rows differ before their last turn or repeat a speaker: rejected with the reason, never guessed at.
    assert len(loaded.rejected) < 0.02 * loaded.read
    assert {r.kind for r in loaded.rejected} <= {"no_shared_prompt", "empty_text", "invalid_role_order"}
    assert all(e.messages[-1]["role"] == "assistant" and e.rejected for e in loaded.examples)


def _pairs(tmp_path):
    """Four prompts, each with its own label as the chosen reply and the next label as the rejected one."""
    texts = ["site down now", "refund my card", "app crashes on login", "office hours?"]
    examples = [
        make_example([{"role": "user", "content": t}, {"role": "assistant", "content": LABELS[i]}], f"pair:{i}",
                     rejected=LABELS[(i + 1) % len(LABELS)])
        for i, t in enumerate(texts)
    ]  # fmt: skip
    return examples, write_examples(examples * 4, tmp_path / "train.jsonl"), write_examples(examples, tmp_path / "v")


@pytest.mark.parametrize(("objective", "method"), [("dpo", "lora"), ("orpo", "lora"), ("kto", "lora"), ("dpo", "full")])
def test_a_preference_objective_learns_to_prefer_the_chosen_replies_saves_and_reloads(
    objective, method, tmp_path, tiny_model
):
    examples, train, val = _pairs(tmp_path)
    base, tokenizer = load_model(str(tiny_model), CPU32)
    before = pair_logprobs(base, tokenizer, examples, "Classify.")
    config = TrainingConfig(objective=objective, max_steps=30, learning_rate=1e-2 if method == "lora" else 2e-3,
                            batch_size=4, warmup_ratio=0.0, lr_scheduler="constant", eval_steps=30,
                            early_stopping_patience=None)  # fmt: skip
    trained = train_files(str(tiny_model), str(train), str(val), "Classify.", config, method, CPU32, tmp_path / "out")
    assert trained.hyperparameters["objective"] == objective and trained.metrics["steps"] == 30
    assert trained.metrics["tokens_per_s"] > 0
    model, tokenizer = load_trained(str(tiny_model), method, trained.output_dir, CPU32, merge=False)
    after = pair_logprobs(model, tokenizer, examples, "Classify.")
    # The random tiny model starts with no preference (margins of a few nats either way); a preference objective
    # must leave every chosen reply ahead of its rejected one, by more than it was before.
    assert preference_accuracy(after) == [1.0] * 4, after
    assert all(a[0] - a[1] > b[0] - b[1] for a, b in zip(after, before, strict=True))
    assert min(reward_margins(after, before, beta=0.1)) > 0


def test_preference_data_plans_dpo_at_a_fortieth_of_the_supervised_rate_and_kto_reads_each_side_as_a_row():
    from tunesmith.training.plan import PlanContext, plan_training

    def plan(data_kind: str, **settings):
        context = PlanContext("unused", n_train=160, max_seq_length=64, data_kind=data_kind)
        return plan_training(TrainingConfig(**settings), "lora", context)

    supervised, pairs = plan("generation"), plan("preference")
    assert supervised.training["objective"] == "sft" and pairs.training["objective"] == "dpo"
    assert pairs.sources["objective"] == "the data (preference)"
    assert pairs.training["learning_rate"] == pytest.approx(supervised.training["learning_rate"] / 40, rel=1e-2)
    assert "x 0.025 (dpo)" in pairs.sources["learning_rate"]
    assert plan("preference", objective="orpo").training["learning_rate"] == pytest.approx(
        supervised.training["learning_rate"] / 4, rel=1e-2
    )
    kto = plan("preference", objective="kto")
    assert kto.schedule["steps_per_epoch"] == 2 * pairs.schedule["steps_per_epoch"] == 40


def test_the_memory_estimate_counts_both_replies_and_a_reference_copy_only_where_the_method_needs_one(tiny_model):
    from tunesmith.decision.memory import estimate, workload_for
    from tunesmith.models.shape import model_shape

    shape = model_shape(str(tiny_model))

    def memory(method: str, objective: str):
        return estimate(method, shape, workload_for(TrainingConfig(objective=objective), "float32", 128, False))

    sft, dpo = memory("full", "sft"), memory("full", "dpo")
    assert dpo.activations_gb == pytest.approx(2 * sft.activations_gb, rel=0.05)
    assert dpo.weights_gb - sft.weights_gb == pytest.approx(shape.total_params * 4 / 1e9)
    assert any("frozen reference copy" in a for a in dpo.assumptions)
    lora_sft, lora_dpo = memory("lora", "sft"), memory("lora", "dpo")
    assert lora_dpo.weights_gb == lora_sft.weights_gb  # the adapter switched off is the reference
    assert memory("full", "orpo").weights_gb == sft.weights_gb  # ORPO has no reference model


def test_a_preference_objective_on_demonstrations_is_refused_at_load(tmp_path, tiny_model):
    from tunesmith.config import ConfigError

    data = write_jsonl(tmp_path / "tickets.jsonl", small_ticket_rows()[:10])
    path = tmp_path / "run.yaml"
    path.write_text(f"name: x\nmodel: {tiny_model}\ndata:\n  path: {data}\n  format: instruction\ntraining:\n"
                    "  objective: dpo\n", encoding="utf-8")  # fmt: skip
    with pytest.raises(ConfigError, match="training.objective dpo trains on preference pairs"):
        load_config(str(path))


def test_a_preference_tuned_model_is_served_with_the_chosen_replies(tmp_path, tiny_model):
    """ORPO keeps the supervised loss on the chosen replies, so after memorising four pairs the chosen reply is the
    greedy answer (checked by its probability first, as the supervised serving tests do) and `predict` serves it."""
    from tests.test_training import min_answer_probability
    from tunesmith.serving.predict import Predictor, read_requests

    examples, train, _ = _pairs(tmp_path)
    config = TrainingConfig(objective="orpo", max_steps=80, learning_rate=1e-2, batch_size=4, warmup_ratio=0.0,
                            eval_steps=40, early_stopping_patience=None)  # fmt: skip
    trained = train_files(str(tiny_model), str(train), str(train), "Answer.", config, "lora", CPU32, tmp_path / "o")
    model, tokenizer = load_trained(str(tiny_model), "lora", trained.output_dir, CPU32)
    assert min_answer_probability(model, tokenizer, examples, "Answer.", LABELS) > 0.5
    rows = Predictor(trained.output_dir, precision="float32").predict(
        list(read_requests([e.prompt_text for e in examples])), batch_size=2
    )
    # The property, not the string: what `predict` serves for each prompt is a reply the trained model prefers to
    # the rejected one (scored as evaluation scores pairs), so the served model is the preference-tuned one.
    served = [dataclasses.replace(e, messages=[*e.messages[:-1], {"role": "assistant", "content": r["output"]}])
              for e, r in zip(examples, rows, strict=True)]  # fmt: skip
    scores = pair_logprobs(model, tokenizer, served, "Answer.")
    assert all(r["output"].strip() for r in rows) and (scores[:, 0] > scores[:, 1]).all(), (rows, scores)


def test_a_preference_training_stopped_midway_resumes_from_its_checkpoint(tmp_path, tiny_model, monkeypatch):
    """The same checkpoints and resume as supervised training: a DPO run that dies after its step-10 checkpoint
    picks up from it when run again, and cleans up once finished."""
    from transformers import TrainerCallback

    import tunesmith.training.sft as sft

    class Crash(RuntimeError):
        pass

    class CrashAtStep15(TrainerCallback):
        def __init__(self, *args):
            pass

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 15:
                raise Crash

    _, pairs, val = _pairs(tmp_path)
    config = TrainingConfig(objective="dpo", max_steps=20, learning_rate=1e-2, batch_size=4, eval_steps=10,
                            save_steps=10, early_stopping_patience=None)  # fmt: skip
    checkpoints = tmp_path / "checkpoints"

    def train():
        return train_files(str(tiny_model), str(pairs), str(val), "Answer.", config, "lora", CPU32, tmp_path / "out",
                           checkpoint_dir=checkpoints)  # fmt: skip

    with monkeypatch.context() as patched:
        patched.setattr(sft, "StopOnNonFinite", CrashAtStep15)
        with pytest.raises(Crash):
            train()
    assert (checkpoints / "checkpoint-10" / "trainer_state.json").is_file()
    trained = train()
    assert trained.metrics["resumed_from_step"] == 10 and trained.metrics["steps"] == 20
    assert not checkpoints.exists()


def test_a_preference_stage_continues_from_a_supervised_model(tmp_path, tiny_model):
    """sft_first's second stage: DPO starts from the supervised adapter (not a fresh one) and keeps what it learnt,
    while moving the preference further than the supervised model had it."""
    examples, train, val = _pairs(tmp_path)
    common = dict(max_steps=40, batch_size=4, warmup_ratio=0.0, eval_steps=40, early_stopping_patience=None)
    supervised = train_files(str(tiny_model), str(train), str(val), "Answer.",
                             TrainingConfig(objective="sft", learning_rate=1e-2, **common), "lora", CPU32,
                             tmp_path / "sft")  # fmt: skip
    preferred = train_files(str(tiny_model), str(train), str(val), "Answer.",
                            TrainingConfig(objective="dpo", learning_rate=1e-3, **common), "lora", CPU32,
                            tmp_path / "dpo", start_from=supervised.output_dir)  # fmt: skip
    base, tokenizer = load_model(str(tiny_model), CPU32)
    scores = {"base": pair_logprobs(base, tokenizer, examples, "Answer.")}
    for name, trained in (("sft", supervised), ("dpo", preferred)):
        model, tokenizer = load_trained(str(tiny_model), "lora", trained.output_dir, CPU32)
        scores[name] = pair_logprobs(model, tokenizer, examples, "Answer.")
    # Started from the supervised adapter, the chosen replies keep what supervised training gave them (each whole
    # reply above probability e^-2; measured -0.2 nats at worst), where DPO from a fresh adapter at this rate and
    # length leaves them at -15 to -34 nats (from -33 to -55 under the base model).
    assert (scores["dpo"][:, 0] > -2).all() and (scores["base"][:, 0] < -20).all(), scores
    margins = {name: s[:, 0] - s[:, 1] for name, s in scores.items()}
    assert (margins["dpo"] > margins["sft"]).all(), margins
    assert not (tmp_path / "dpo" / "model" / "ref").exists()  # the trainer's reference copy is not saved


@pytest.mark.e2e
def test_a_pipeline_run_on_preference_pairs_trains_dpo_after_a_supervised_stage_and_reports(
    prefect_server, mlflow_uri, tmp_path, tiny_model
):
    """`tunesmith run` on preference data, as a user runs it: curated by prompt, the base model's preference
    accuracy as the decision's baseline, a supervised stage then DPO, the preference evaluation and the report."""
    from mlflow import MlflowClient

    from tunesmith.flows.pipeline import finetune_pipeline

    labels = ["urgent", "billing", "technical", "general"]
    rows = [{"prompt": r["text"], "chosen": f"The {r['label']} team will answer this today.",
             "rejected": f"The {labels[(labels.index(r['label']) + 1) % 4]} team will answer this today."}
            for r in small_ticket_rows()]  # fmt: skip
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    config = tmp_path / "run.yaml"
    config.write_text(f"""name: pairs
model: {tiny_model}
output_dir: {tmp_path / "runs"}
data:
  path: {data}
  format: preference
training:
  max_steps: 10
  preference:
    sft_first: true
forgetting:
  enabled: false
tracking:
  experiment: pairs
""", encoding="utf-8")  # fmt: skip
    result = finetune_pipeline(str(config), [], return_state=True).result()
    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("pairs").experiment_id])
    stages = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.run_id}
    decision = stages["decision"].data
    assert decision.metrics["baseline_zero_shot_preference_accuracy"] >= 0  # the base model's preference, measured
    training = stages["training"].data
    assert training.params["objective"] == "dpo" and training.tags["tunesmith.objective"] == "dpo"
    assert training.metrics["supervised_steps"] == 10 and training.metrics["steps"] == 10
    evaluation = stages["evaluation"].data.metrics
    assert {"base_preference_accuracy", "finetuned_preference_accuracy", "finetuned_reward_margin"} <= set(evaluation)
    summary = Path(result.summary_path).read_text()
    assert "Implicit reward (DPO's" in summary and "Sample replies, worst first" in summary
