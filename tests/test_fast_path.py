"""The speed switches: what `auto` turns on where, refusals where a switch cannot run, and the same losses as the
plain path for the switches a CPU has (padding-free batches, fused AdamW; Liger and FlashAttention in test_cuda)."""

import pytest

from tests.test_training import CPU32, _fast, _memorisable_set
from tunesmith.config.schema import TrainingConfig
from tunesmith.errors import UsageError
from tunesmith.records import Precision
from tunesmith.training import fast_path
from tunesmith.training.sft import train_model

CUDA16 = Precision("cuda", "bfloat16", "tests")


def test_auto_keeps_the_cpu_path_plain_and_turns_the_gpu_path_on(monkeypatch):
    cpu = fast_path.resolve(TrainingConfig(), CPU32)
    assert cpu.params() == {"attention": "sdpa", "padding_free": False, "fused_optimizer": False, "liger": False,
                            "frozen_dtype": "float32"}  # fmt: skip
    monkeypatch.setattr(fast_path, "_installed", lambda module: True)
    gpu = fast_path.resolve(TrainingConfig(), CUDA16)
    assert gpu.params() == {"attention": "flash_attention_2", "padding_free": True, "fused_optimizer": True,
                            "liger": True, "frozen_dtype": "bfloat16"}  # fmt: skip
    monkeypatch.setattr(fast_path, "_installed", lambda module: False)
    bare = fast_path.resolve(TrainingConfig(), CUDA16)
    # Without a varlen kernel, padding-free batches would attend over the whole flattened batch: length grouping.
    assert (bare.attention, bare.padding_free, bare.liger) == ("sdpa", False, False)
    assert "length grouping" in bare.why["padding_free"] and bare.fused_optimizer
    assert fast_path.resolve(TrainingConfig(frozen_weights="float32"), CUDA16).frozen_dtype == "float32"


@pytest.mark.parametrize(
    "settings, field",
    [({"liger": True}, "training.liger"), ({"attention": "flash_attention_2"}, "training.attention")],
)
def test_a_switch_that_cannot_run_here_is_refused(settings, field):
    with pytest.raises(UsageError) as refused:
        fast_path.resolve(TrainingConfig(**settings), CPU32)
    assert refused.value.where == field and "auto" in refused.value.fix


def _losses(tmp_path, tiny_model, name, **switches) -> list[float]:
    train, val = _memorisable_set(tmp_path)
    # No LoRA dropout: its random masks follow the batch's shape, which padding-free batches change.
    config = _fast("lora", steps=4, logging_steps=1, lora={"dropout": 0.0}, **switches)
    trained = train_model(str(tiny_model), str(train), str(val), "Classify.", config, "lora", CPU32, tmp_path / name)
    assert all(trained.hyperparameters[k] == v for k, v in switches.items())
    return [h["loss"] for h in trained.history if "loss" in h]


def test_padding_free_batches_and_fused_adamw_train_with_the_plain_losses(tmp_path, tiny_model):
    """The same examples in the same order, flattened into one sequence without padding (sequence boundaries
    from position ids) or stepped by torch's fused AdamW kernel, give the padded, unfused losses: fp32
    reassociation differences only (1e-4 relative, far below the 10% a wrong mask or update would move them)."""
    plain = _losses(tmp_path, tiny_model, "plain", padding_free=False, fused_optimizer=False)
    padding_free = _losses(tmp_path, tiny_model, "padding-free", padding_free=True)
    fused = _losses(tmp_path, tiny_model, "fused", fused_optimizer=True)
    assert len(plain) == 4 and plain[-1] < plain[0]
    assert padding_free == pytest.approx(plain, rel=1e-4)
    assert fused == pytest.approx(plain, rel=1e-4)


def test_the_memory_estimate_follows_the_frozen_base_dtype():
    """7B LoRA on a bf16 GPU: the frozen base in bf16 is 2 bytes a weight; in fp32 it was 4, plus autocast's
    2-byte copy. Full fine-tuning keeps its fp32 master weights either way."""
    from tests.test_decision import LLAMA_7B
    from tunesmith.decision.memory import estimate, workload_for

    def weights_gb(method: str, frozen: str) -> float:
        w = workload_for(TrainingConfig(frozen_weights=frozen), "bfloat16", 512, on_gpu=True)
        return estimate(method, LLAMA_7B, w).weights_gb

    params_b = LLAMA_7B.total_params / 1e9
    # LoRA adds its own fp32 matrices: r16 on every linear layer is ~40M parameters, ~1% of the bf16 base
    assert weights_gb("lora", "auto") == pytest.approx(2 * params_b, rel=0.02)
    assert weights_gb("lora", "float32") == pytest.approx(6 * params_b, rel=0.02)
    assert weights_gb("full", "auto") == weights_gb("full", "float32") == pytest.approx(6 * params_b, rel=0.01)
