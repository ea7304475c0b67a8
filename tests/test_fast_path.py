"""The speed switches: what `auto` turns on where, refusals where a switch cannot run, and the same losses as the
plain path for the switches a CPU has (padding-free batches, fused AdamW; Liger and FlashAttention in test_cuda)."""

import pytest
from transformers import TrainerCallback

from tests.test_training import CPU32, _fast, _memorisable_set
from tunesmith.config.schema import TrainingConfig
from tunesmith.errors import UsageError
from tunesmith.records import Precision
from tunesmith.training import fast_path
from tunesmith.training.sft import train_files

CUDA16 = Precision("cuda", "bfloat16", "tests")


def test_auto_keeps_the_cpu_path_plain_and_turns_the_gpu_path_on(monkeypatch):
    cpu = fast_path.resolve(TrainingConfig(), CPU32)
    assert cpu.params() == {"attention": "sdpa", "padding_free": False, "fused_optimizer": False, "liger": False,
                            "frozen_dtype": "float32", "compile": False, "tokens_per_batch": None}  # fmt: skip
    monkeypatch.setattr(fast_path, "_installed", lambda module: True)
    gpu = fast_path.resolve(TrainingConfig(), CUDA16)
    assert gpu.params() == {"attention": "flash_attention_2", "padding_free": True, "fused_optimizer": True,
                            "liger": True, "frozen_dtype": "bfloat16", "compile": True,
                            "tokens_per_batch": None}  # fmt: skip
    monkeypatch.setattr(fast_path, "_installed", lambda module: False)
    bare = fast_path.resolve(TrainingConfig(), CUDA16)
    # Without a varlen kernel, padding-free batches would attend over the whole flattened batch: length grouping.
    assert (bare.attention, bare.padding_free, bare.liger) == ("sdpa", False, False)
    assert "length grouping" in bare.why["padding_free"] and bare.fused_optimizer
    # Packed (a plan's resolved budget): PyTorch's block-sparse flex attention keeps each example to itself.
    packed = fast_path.resolve(TrainingConfig(tokens_per_batch=4096), CUDA16)
    assert (packed.attention, packed.padding_free, packed.tokens_per_batch) == ("flex_attention", True, 4096)
    assert fast_path.resolve(TrainingConfig(tokens_per_batch=4096), CPU32).attention == "sdpa"
    assert not fast_path.resolve(TrainingConfig(compile=False), CUDA16).compile
    sharded = fast_path.resolve(TrainingConfig(distributed={"strategy": "fsdp2"}), CUDA16)
    assert not sharded.compile and "fsdp2" in sharded.why["compile"]
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
    trained = train_files(str(tiny_model), str(train), str(val), "Classify.", config, "lora", CPU32, tmp_path / name)
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


def test_adapters_take_half_precision_activations_without_copies(tiny_model):
    """A bf16 base with fp32 LoRA matrices under autocast (the GPU path): PEFT's cast of every adapted layer's
    input to fp32 is skipped, so the forward makes fewer copies, and the loss is the same (the cast was an exact
    round trip: autocast computes the adapter's matmuls in bf16 either way)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.profiler import profile
    from transformers import AutoModelForCausalLM

    def loss_and_copies(skip: bool) -> tuple[float, int]:
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.bfloat16)
        model = get_peft_model(base, LoraConfig(r=8, target_modules="all-linear", lora_dropout=0.0))
        for name, p in model.named_parameters():
            if "lora_B" in name:  # a trained adapter, so that it changes the output
                torch.nn.init.normal_(p, std=0.05)
        assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
        if skip:
            assert fast_path.skip_adapter_input_casts(model, Precision("cpu", "bfloat16", "tests")) > 0
        ids = torch.arange(1, 33).reshape(2, 16)
        with profile() as prof, torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        copies = sum(e.count for e in prof.key_averages() if e.key == "aten::_to_copy")
        return float(loss), copies

    cast_loss, cast_copies = loss_and_copies(skip=False)
    plain_loss, plain_copies = loss_and_copies(skip=True)
    assert plain_loss == pytest.approx(cast_loss, rel=1e-3)
    assert plain_copies < cast_copies
    assert fast_path.skip_adapter_input_casts(object.__new__(torch.nn.Module), CPU32) == 0  # fp32: nothing to skip


def test_the_gradient_guard_sees_a_non_finite_value_in_any_tensor():
    """One fused maximum over every gradient (one wait for the device per step instead of one per tensor)."""
    import torch

    from tunesmith.training.guards import all_finite

    grads = [torch.ones(3, 4), torch.zeros(5, dtype=torch.bfloat16), torch.full((2,), -1e30)]
    assert all_finite(grads) and all_finite([])
    for bad in (float("nan"), float("inf"), float("-inf")):
        broken = [g.clone() for g in grads]
        broken[1][3] = bad
        assert not all_finite(broken)


def test_the_memory_estimate_keeps_one_mlp_activation_less_with_liger(monkeypatch):
    """Liger's SwiGLU keeps the gate and up outputs and recomputes the SiLU: one intermediate-sized activation
    per token and layer less than PyTorch's MLP (H100, Llama-3.2-1B shape: LoRA within 9% of the measured peak
    with it, 18% over without)."""
    from tests.test_decision import LLAMA_7B
    from tunesmith.decision.memory import GB, estimate, workload_for

    monkeypatch.setattr(fast_path, "_installed", lambda module: True)
    fused = workload_for(TrainingConfig(), "bfloat16", 512, on_gpu=True)
    plain = workload_for(TrainingConfig(liger=False), "bfloat16", 512, on_gpu=True)
    assert fused.fused_mlp and not plain.fused_mlp
    assert not workload_for(TrainingConfig(), "float32", 512, on_gpu=False).fused_mlp
    saved = estimate("lora", LLAMA_7B, plain).activations_gb - estimate("lora", LLAMA_7B, fused).activations_gb
    per_token_layer = LLAMA_7B.intermediate * 2  # bf16 elements
    assert saved == pytest.approx(512 * fused.batch_size * LLAMA_7B.layers * per_token_layer / GB, rel=1e-6)


# Reads that are not waits for a GPU or not Tunesmith's to remove: the optimizer's step counters and the sampler's
# order live on the host; transformers reads the position ids once per forward pass to tell packed rows (skipped
# under torch.compile, which `auto` turns on with a GPU).
HOST_READS = ("torch/optim/", "torch/utils/data/", "transformers/masking_utils.py")


class StepNumber(TrainerCallback):
    def __init__(self, now: dict):
        self.now = now

    def on_step_begin(self, args, state, control, **kwargs):
        self.now["step"] = state.global_step + 1


@pytest.mark.parametrize("tokens_per_batch", ["off", 128])
def test_a_step_reads_the_device_only_when_it_logs(tmp_path, tiny_model, monkeypatch, tokens_per_batch):
    """Every read of a tensor's value (item, bool, tolist, float, int) during training, by step and caller: the
    loss, the step metrics and the gradient guard are read at logging steps (every 4th) and at no other step."""
    import sys
    from collections import Counter

    import torch

    from tunesmith.training import sft

    reads, now = Counter(), {"step": 0, "collating": False}

    def counted(name):
        original = getattr(torch.Tensor, name)

        def read(tensor, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if not now["collating"] and not any(part in caller for part in HOST_READS):
                reads[now["step"], caller.rsplit("site-packages/", 1)[-1]] += 1
            return original(tensor, *args, **kwargs)

        return read

    build = sft.build_trainer

    def build_counting(*args, **kwargs):
        trainer = build(*args, **kwargs)
        collate = trainer.data_collator  # batches are made on the host from host data

        def collate_uncounted(features):
            now["collating"] = True
            try:
                return collate(features)
            finally:
                now["collating"] = False

        trainer.data_collator = collate_uncounted
        trainer.add_callback(StepNumber(now))
        for name in ("item", "__bool__", "tolist", "__float__", "__int__"):
            monkeypatch.setattr(torch.Tensor, name, counted(name))
        return trainer

    monkeypatch.setattr(sft, "build_trainer", build_counting)
    train, val = _memorisable_set(tmp_path)
    config = _fast("lora", steps=12, logging_steps=4, batch_size=2, save_steps=100, tokens_per_batch=tokens_per_batch)
    sft.train_files(str(tiny_model), str(train), str(val), "Classify.", config, "lora", CPU32, tmp_path / "out")
    steps_read = {step for step, _ in reads if 1 <= step <= 12}
    assert steps_read == {4, 8, 12}, sorted(reads.items())
    assert any("trainer.py" in caller for step, caller in reads if step == 4)  # the counting sees the loss read
