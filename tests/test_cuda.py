"""CUDA-only paths: QLoRA with bitsandbytes' paged AdamW on a GPU, running out of GPU memory, and training under
FSDP2 and DeepSpeed ZeRO-3 (launched as a job, one process on one GPU). Skipped on machines without CUDA."""

import json

import pytest
import torch

from tests.test_training import _fast, _memorisable_set, _validation_loss, long_inputs
from tunesmith.models.hardware import choose_precision
from tunesmith.training.distributed.spec import TrainingSpec
from tunesmith.training.inference import load_trained
from tunesmith.training.sft import train_files
from tunesmith.training.stage import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_qlora_trains_on_the_gpu_with_the_paged_optimizer(tmp_path, tiny_model):
    precision = choose_precision()
    assert precision.device == "cuda" and precision.dtype in ("bfloat16", "float16")
    train, val = _memorisable_set(tmp_path)
    trained = train_files(
        str(tiny_model), str(train), str(val), "Classify.", _fast("qlora"), "qlora", precision, tmp_path / "out"
    )
    assert trained.hyperparameters["optimizer"] == "paged_adamw_32bit"
    losses = [h["loss"] for h in trained.history if "loss" in h]
    assert losses[-1] < 0.5 * losses[0], losses
    assert trained.metrics["peak_gpu_mb"] > 0
    model, tokenizer = load_trained(str(tiny_model), "qlora", trained.output_dir, precision, merge=False)
    print("qlora on", torch.cuda.get_device_name(0), precision.dtype, trained.metrics, losses)
    assert _validation_loss(model, tokenizer, val) == pytest.approx(trained.metrics["final_eval_loss"], rel=5e-2)


def test_running_out_of_gpu_memory_mid_training_says_what_to_change(tmp_path, tiny_model):
    from tunesmith.errors import NotEnoughMemory

    # 32 sequences of about 26k tokens: the attention scores of one layer need about 350 GB, more than any GPU has.
    model, train = long_inputs(tmp_path, tiny_model, 32, 16000)
    config = _fast("lora", steps=2, batch_size=32, max_seq_length=40_000)
    with pytest.raises(NotEnoughMemory, match=r"GPU out of memory during training step 1 of 2") as err:
        train_files(str(model), str(train), str(train), "Classify.", config, "lora", choose_precision(), tmp_path / "o")
    assert "lower training.batch_size" in err.value.fix


SHARDED_TYPES = {"ddp": "NO", "fsdp2": "FSDP", "deepspeed_zero2": "DEEPSPEED", "deepspeed_zero3": "DEEPSPEED"}


@pytest.mark.parametrize("method", ["lora", "full"])
@pytest.mark.parametrize("strategy", ["fsdp2", "deepspeed_zero3"])
def test_sharded_strategies_train_a_model_that_loads_like_any_other(strategy, method, tmp_path, tiny_model):
    if strategy.startswith("deepspeed"):
        pytest.importorskip("deepspeed")
    precision = choose_precision()
    train_path, val = _memorisable_set(tmp_path)
    config = _fast(method, max_seq_length=64, distributed={"strategy": strategy, "num_processes": 1})
    spec = TrainingSpec.for_files(str(tiny_model), str(train_path), str(val), "Classify.", config, method, precision,
                                  tmp_path / "out", checkpoint_dir=tmp_path / "ckpt")  # fmt: skip
    trained = train(spec)
    report = json.loads((spec.ranks_dir / "rank-0.json").read_text())
    print(strategy, method, torch.cuda.get_device_name(0), report, trained.metrics)
    assert report["num_processes"] == 1 and report["distributed_type"].endswith(SHARDED_TYPES[strategy])
    losses = [h["loss"] for h in trained.history if "loss" in h]
    assert losses[-1] < 0.5 * losses[0], losses
    # Rank 0 saved the gathered weights: the model loads without the strategy and has the loss training reported.
    model, tokenizer = load_trained(str(tiny_model), method, trained.output_dir, precision, merge=False)
    assert _validation_loss(model, tokenizer, val) == pytest.approx(trained.metrics["final_eval_loss"], rel=5e-2)


def test_packed_rows_train_with_the_gpu_kernel_like_padded_batches(tmp_path, tiny_model):
    """The packed row and its examples padded, through the attention the fast path picks on this GPU
    (FlashAttention's varlen kernel, or flex attention with a document mask) under bf16 autocast: bf16 rounding
    (2% relative) rather than fp32's 1e-4, still far below what attending across examples moves."""
    from tests.test_packing import packed_and_padded

    packed_and_padded(tmp_path, tiny_model, choose_precision(), rel=2e-2)


def test_the_gpu_default_path_compiles_packs_and_learns(tmp_path, tiny_model):
    train, val = _memorisable_set(tmp_path)
    precision = choose_precision()
    config = _fast("lora", steps=30, tokens_per_batch=256)
    trained = train_files(str(tiny_model), str(train), str(val), "Classify.", config, "lora", precision,
                          tmp_path / "out")  # fmt: skip
    hp = trained.hyperparameters
    print("gpu default path", {k: hp[k] for k in ("attention", "compile", "tokens_per_batch", "fused_optimizer")})
    assert hp["compile"] is True and hp["tokens_per_batch"] == 256 and hp["padding_free"] is True
    assert hp["attention"] in ("flash_attention_2", "flex_attention")
    losses = [h["loss"] for h in trained.history if "loss" in h]
    assert losses[-1] < 0.5 * losses[0], losses
