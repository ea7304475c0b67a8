"""training.l2_to_base: a real training pulled toward the base weights, and where the setting cannot apply."""

import pytest
from pydantic import ValidationError

from tests.test_training import _memorisable_set
from tunesmith.config.schema import TrainingConfig
from tunesmith.forgetting.mitigation import plan_attempts
from tunesmith.records import Precision
from tunesmith.training.sft import train_files

CPU32 = Precision("cpu", "float32", "tests")


def _distance_from_base(base_dir, trained_dir) -> float:
    import torch
    from transformers import AutoModelForCausalLM

    base = dict(AutoModelForCausalLM.from_pretrained(base_dir).named_parameters())
    trained = AutoModelForCausalLM.from_pretrained(trained_dir).named_parameters()
    return float(torch.sqrt(sum(((p - base[n]) ** 2).sum() for n, p in trained)))


def test_l2_to_base_keeps_full_fine_tuning_closer_to_the_base_weights(tmp_path, tiny_model):
    train, validation = _memorisable_set(tmp_path)
    steps, rate = 30, 3e-3
    distance = {}
    for strength in (0.0, 4 / (rate * steps)):
        config = TrainingConfig(max_steps=steps, learning_rate=rate, batch_size=4, lr_scheduler="constant",
                                warmup_ratio=0.0, l2_to_base=strength, early_stopping_patience=None)  # fmt: skip
        out = tmp_path / f"l2-{strength:g}"
        trained = train_files(str(tiny_model), str(train), str(validation), "Classify.", config, "full", CPU32, out)
        distance[strength] = _distance_from_base(tiny_model, trained.output_dir)
    without, pulled = distance.values()
    # The pull per step is lr x strength = 4/30: a weight pushed the same way every step ends at (1 - e^-4) / 4 =
    # 0.25 of its unpulled distance, noise at less. Adam's normalised steps keep the pushes comparable between the
    # two runs, so half the distance leaves a wide margin for any CPU's rounding.
    assert 0 < pulled < 0.5 * without


def test_l2_to_base_is_refused_where_it_cannot_mean_the_base_model():
    with pytest.raises(ValidationError, match="prefix does not start as the base model"):
        TrainingConfig(method="prefix", l2_to_base=1.0)
    with pytest.raises(ValidationError, match="fsdp2 shards them"):
        TrainingConfig(method="lora", l2_to_base=1.0, distributed={"strategy": "fsdp2"})
    assert TrainingConfig(method="lora", l2_to_base=1.0, distributed={"strategy": "ddp"}).l2_to_base == 1.0


def test_the_l2_attempt_halves_a_steady_drift_and_is_skipped_where_it_cannot_apply():
    order = ["learning_rate", "l2_to_base"]
    attempts = plan_attempts(order, 2, 0.0, 1e-3, 100)
    # strength x the schedule's summed rates (1e-4 x 100 / 2 after the halved rate) = 1.6
    assert attempts[1].training == {"learning_rate": 5e-4, "l2_to_base": 64.0}
    assert attempts[1].why == "learning rate 0.0005 + L2 toward the base 64"
    assert [a.name for a in plan_attempts(order, 2, 0.0, 1e-3, 100, anchored=False)] == ["learning_rate"]
