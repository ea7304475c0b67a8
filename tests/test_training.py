import torch
from safetensors.torch import load_file

from tasks.config.schema import TrainingConfig
from tasks.curation.records import make_example, write_examples
from tasks.models.hardware import Precision
from tasks.models.load import load_model
from tasks.training.inference import load_trained
from tasks.training.sft import train_model
from tests.conftest import LABELS

CPU32 = Precision("cpu", "float32", "tests")


def _memorisable_set(tmp_path):
    texts = ["site down now", "refund my card", "app crashes on login", "office hours?"]
    examples = [
        make_example([{"role": "user", "content": t}, {"role": "assistant", "content": label}], f"mem:{i}", label)
        for i, (t, label) in enumerate(zip(texts, LABELS, strict=True))
    ]
    return write_examples(examples * 4, tmp_path / "train.jsonl"), write_examples(examples, tmp_path / "val.jsonl")


def test_lora_learns_a_memorisable_set_and_leaves_the_base_untouched(tmp_path, tiny_model):
    train, val = _memorisable_set(tmp_path)
    config = TrainingConfig(
        max_steps=40, learning_rate=1e-2, batch_size=4, warmup_ratio=0.0, logging_steps=5, lr_scheduler="constant"
    )
    trained = train_model(str(tiny_model), str(train), str(val), "Classify.", config, "lora", CPU32, tmp_path / "out")

    losses = [h["loss"] for h in trained.history if "loss" in h]
    assert losses[-1] < 0.2 * losses[0]
    assert trained.metrics["steps"] == 40
    assert 0 < trained.metrics["trainable_pct"] < 100
    assert trained.metrics["tokens_per_s"] > 0 and trained.metrics["peak_rss_mb"] > 0
    assert (tmp_path / "out" / "loss_curve.png").stat().st_size > 0

    adapter = load_file(f"{trained.output_dir}/adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert any(name.endswith("lora_B.weight") and t.abs().sum() > 0 for name, t in adapter.items())

    base, _ = load_model(str(tiny_model), CPU32)
    tuned, _ = load_trained(str(tiny_model), "lora", trained.output_dir, CPU32)
    reloaded, _ = load_model(str(tiny_model), CPU32)
    assert torch.equal(base.model.embed_tokens.weight, reloaded.model.embed_tokens.weight)  # base on disk untouched
    q_base = base.model.layers[0].self_attn.q_proj.weight
    q_tuned = tuned.model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(q_base, q_tuned)  # the merged adapter changed the projection
    assert torch.equal(base.model.layers[0].mlp.up_proj.weight, tuned.model.layers[0].mlp.up_proj.weight)
