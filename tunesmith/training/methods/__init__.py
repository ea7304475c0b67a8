"""Training methods behind one registry. Each module exposes the same names:

DEFAULTS (MethodDefaults), CAN_MERGE (bool), build(base, config, precision, trust_remote_code) -> the
trainable model, save(model, out_dir), load(base, trained_dir, precision, trust_remote_code) -> a model for
inference. Adding a method is one module and one line below.
"""

from tunesmith.training.methods import adapter, dora, full, ia3, lora, prefix, prompt, qlora, spectrum

METHODS = {
    "full": full,
    "lora": lora,
    "dora": dora,
    "qlora": qlora,
    "adapter": adapter,
    "prefix": prefix,
    "prompt": prompt,
    "ia3": ia3,
    "spectrum": spectrum,
}

PEFT_METHODS = {"lora", "dora", "qlora", "prefix", "prompt", "ia3"}
