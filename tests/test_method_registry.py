"""A method owns everything about itself: one defined here and registered reaches config validation, the memory
plan and a comparison on the tiny model, with no other file touched."""

from __future__ import annotations

import pytest

from tests.conftest import COMPARE_FAST, write_config
from tunesmith.config import ConfigError, load_config
from tunesmith.config.schema import TrainingConfig
from tunesmith.decision.memory import estimate_all, workload_for
from tunesmith.models.shape import ModelShape, model_shape
from tunesmith.records import Precision
from tunesmith.training.methods import METHODS, register
from tunesmith.training.methods.base import MethodDefaults, Settings, TrainingMethod, load_base, load_full, save_full
from tunesmith.training.sft import parameter_counts


class NormSettings(Settings):
    include_final: bool = True  # the norm before the output head too


def build_norm_tuning(base: str, training, precision, trust_remote_code: bool = False):
    """Norm tuning: only the RMSNorm scales train (a few thousand parameters)."""
    model = load_base(base, trust_remote_code)
    for name, parameter in model.named_parameters():
        in_layer = ".layers." in name and name.endswith("norm.weight")
        final = name == "model.norm.weight" and training.norm_tuning.include_final
        parameter.requires_grad = in_layer or final
    return model


def norm_parameters(shape: ModelShape, training) -> int:
    return shape.layers * 2 * shape.hidden + (shape.hidden if training.norm_tuning.include_final else 0)


NORM_TUNING = TrainingMethod(
    name="norm_tuning",
    defaults=MethodDefaults(learning_rate=1e-2, epochs=1.0),
    build=build_norm_tuning,
    save=save_full,
    load=load_full,
    trainable_params=norm_parameters,
    settings_key="norm_tuning",
    settings=NormSettings,
    adds_weights=False,
    compare_by_default=False,
)


@pytest.fixture
def norm_tuning():
    register(NORM_TUNING)
    yield NORM_TUNING
    METHODS.pop(NORM_TUNING.name)


def test_a_registered_method_is_a_valid_config_choice_with_its_own_section(norm_tuning, tmp_path, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, "smollm2-135m-instruct")
    loaded = load_config(config, ["training.method=norm_tuning", "training.norm_tuning.include_final=false"])
    assert loaded.training.method == "norm_tuning" and loaded.training.norm_tuning.include_final is False
    assert load_config(config, ["comparison.methods=[lora, norm_tuning]"]).comparison.methods == ["lora", "norm_tuning"]
    with pytest.raises(ConfigError, match=r"training.norm_tuning.include_finall is not a known key"):
        load_config(config, ["training.norm_tuning.include_finall=false"])


def test_an_unregistered_method_is_refused(tmp_path, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, "smollm2-135m-instruct")
    with pytest.raises(ConfigError, match=r"training.method: 'norm_tuning' is not valid: unknown method"):
        load_config(config, ["training.method=norm_tuning"])
    with pytest.raises(ConfigError, match=r"training.norm_tuning is not a known key"):
        load_config(config, ["training.norm_tuning.include_final=false"])


def test_the_memory_plan_estimates_it_and_counts_what_it_trains(norm_tuning, tiny_model):
    training = TrainingConfig(method="norm_tuning")
    estimates = estimate_all(model_shape(str(tiny_model)), workload_for(training, "float32", 64, False))
    assert "norm_tuning" in estimates
    built = norm_tuning.build(str(tiny_model), training, Precision("cpu", "float32", "test"))
    assert estimates["norm_tuning"].trainable_params == parameter_counts(built)[0] > 0
    assert estimates["norm_tuning"].optimizer_gb < estimates["lora"].optimizer_gb


@pytest.mark.slow
def test_a_comparison_trains_and_measures_it_beside_a_built_in_method(
    norm_tuning, prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets
):
    from tunesmith.flows.compare import compare_methods

    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, COMPARE_FAST)
    out = compare_methods(str(config), ["lora", "norm_tuning"], ["forgetting.enabled=false"])
    by_method = {r.method: r for r in out.results}
    assert by_method["norm_tuning"].status == "trained", by_method["norm_tuning"].reason
    metrics = by_method["norm_tuning"].metrics
    assert 0 < metrics["trainable_pct"] < by_method["lora"].metrics["trainable_pct"]
    assert "test_accuracy" in metrics and "latency_ms_merged" not in metrics  # it declared no merge
    assert "| norm_tuning | trained |" in out.report


def test_default_learning_rates_follow_the_model_width(tiny_model):
    """Full fine-tuning, Spectrum, adapters and the LoRA family scale their default rate with the model's hidden
    width (Thinking Machines' fit across Llama sizes, LoRA at 10x full); the other methods keep theirs; a set rate
    always wins."""
    from tunesmith.config.schema import TrainingConfig
    from tunesmith.models.shape import hidden_size
    from tunesmith.training.plan import PlanContext, plan_training

    lora, full = METHODS["lora"].defaults, METHODS["full"].defaults
    assert lora.learning_rate_for(2000) == 5e-4 and full.learning_rate_for(2000) == 5e-5
    assert lora.learning_rate_for(576) == pytest.approx(1.32e-3, rel=0.01)  # SmolLM2-135M
    rates = [lora.learning_rate_for(width) for width in (576, 2048, 4096, 8192)]
    assert rates == sorted(rates, reverse=True) and rates[-1] == pytest.approx(1.66e-4, rel=0.01)  # 70B
    assert all(METHODS[m].defaults is lora for m in ("dora", "qlora"))
    assert METHODS["ia3"].defaults.learning_rate_for(576) == METHODS["ia3"].defaults.learning_rate
    assert lora.learning_rate_for(None) == lora.learning_rate
    assert METHODS["adapter"].defaults.learning_rate_for(576) == pytest.approx(1e-3, rel=0.01)  # measured best
    assert METHODS["spectrum"].defaults.learning_rate_for(576) == full.learning_rate_for(576)  # full's own weights
    for method in [m for m in METHODS if "learning_rate" in METHODS[m].search_space]:  # a search starts from
        space = METHODS[method].search_space["learning_rate"]  # the default, so it lies in the searched range
        defaults = METHODS[method].defaults
        assert all(space.low <= defaults.learning_rate_for(w) <= space.high for w in (576, 2048, 4096, 8192))
    width = hidden_size(str(tiny_model))
    context = PlanContext(str(tiny_model), n_train=100, max_seq_length=64, hidden=width)
    plan = plan_training(TrainingConfig(), "lora", context)
    assert width and plan.training["learning_rate"] == lora.learning_rate_for(width)
    assert plan.sources["learning_rate"] == f"width fit (hidden {width})"
    set_rate = plan_training(TrainingConfig(learning_rate=1e-4), "lora", context)
    assert set_rate.training["learning_rate"] == 1e-4 and set_rate.sources["learning_rate"] == "config"


def test_default_epochs_follow_the_data_size():
    """Three passes over data of ordinary size; small sets get passes enough to see 100 examples, large sets are
    cut to about 25,000 examples seen (at least one pass); a set epoch count always wins."""
    from tunesmith.config.schema import TrainingConfig
    from tunesmith.training.plan import PlanContext, plan_training

    def plan(training: TrainingConfig):
        return plan_training(training, "lora", PlanContext("unused", n_train=158, max_seq_length=64))

    epochs = METHODS["lora"].defaults.epochs_for
    assert [epochs(n) for n in (10, 30, 158, 1000, 8_864, 20_000, 100_000)] == [10, 4, 3, 3, 2, 1, 1]
    assert epochs(2) == 25 and epochs(0) == 3  # at most 25 passes; no count known: the plain default
    assert all(n * epochs(n) >= 100 for n in range(4, 200))
    assert all(n * epochs(n) <= 25_000 for n in range(8_334, 25_000, 97))
    assert plan(TrainingConfig()).training["epochs"] == 3
    assert plan(TrainingConfig()).sources["epochs"] == "data size (158 examples)"
    assert plan(TrainingConfig()).schedule["total_steps"] == 60  # 20 steps an epoch at batch 8
    assert plan(TrainingConfig(epochs=1.5)).training["epochs"] == 1.5
