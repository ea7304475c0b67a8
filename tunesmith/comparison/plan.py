"""Which of the requested methods fit this machine's memory, from the decision stage's estimator."""

from __future__ import annotations

from tunesmith.config import RunConfig
from tunesmith.decision.memory import estimate_all, workload_for
from tunesmith.decision.stage import available_memory
from tunesmith.models.shape import model_shape
from tunesmith.records import CuratedData, MethodResult, PreparedModel


def fit_methods(
    config: RunConfig, data: CuratedData, model: PreparedModel, methods: list[str]
) -> tuple[list[str], list[MethodResult], dict[str, float]]:
    """(methods to run, skipped rows with the reason, estimated GB per method)."""
    seq_len = min(data.max_seq_length, int(data.token_stats.get("max") or data.max_seq_length))
    workload = workload_for(config.training, model.precision.dtype, seq_len, model.precision.device == "cuda")
    estimates = estimate_all(model_shape(model.path, model.trust_remote_code), workload, tuple(methods))
    available_gb, source = available_memory(config.decision.memory_gb)
    budget = available_gb * config.decision.memory_headroom
    runnable, skipped = [], []
    for method in dict.fromkeys(methods):  # keep the order, drop repeats
        need = estimates[method].total_gb
        if config.comparison.skip_unfit and need > budget:
            why = f"estimated {need:.2f} GB of memory, {budget:.2f} GB usable ({source})"
            skipped.append(MethodResult(method, "skipped", why))
        else:
            runnable.append(method)
    return runnable, skipped, {m: e.total_gb for m, e in estimates.items()}
