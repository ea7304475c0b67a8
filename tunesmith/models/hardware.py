"""Pick the device and the training/inference precision the hardware handles well."""

from __future__ import annotations

from pathlib import Path

import torch

from tunesmith.records import Precision


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX); elsewhere bf16 is emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(requested: str = "auto") -> Precision:
    """bf16 on GPUs and CPUs that support it natively, fp16 on older GPUs, fp32 otherwise."""
    if requested != "auto":
        return Precision("cuda" if torch.cuda.is_available() else "cpu", requested, "set by training.precision")
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return Precision("cuda", "bfloat16", "CUDA GPU with bf16 support")
        return Precision("cuda", "float16", "CUDA GPU without bf16 support")
    if cpu_has_native_bf16():
        return Precision("cpu", "bfloat16", "CPU with native bf16 instructions")
    # Emulated bf16 measured about 2x slower than fp32 on CPUs without it.
    return Precision("cpu", "float32", "CPU without native bf16 (emulated bf16 is about 2x slower)")
