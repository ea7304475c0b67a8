"""Keep the logs readable: no per-batch progress bars from the libraries underneath, and no warnings that are
known to be harmless. Each filter names the one message it hides and why it does not matter."""

from __future__ import annotations

import logging
import os
import warnings


def filter_known_warnings() -> None:
    """Hide the known-harmless warnings; cheap, and must run before the libraries are imported."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Prefect's telemetry can never reach its host from an air-gapped machine; the temporary server would print
    # "Failed to send telemetry" twice per run. DO_NOT_TRACK is the client's switch.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # PEFT reads model.is_gradient_checkpointing, which transformers 5 renamed to is_activation_checkpointing;
    # the old name still returns the right value, it only warns about its removal in transformers 6.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    # On CPUs with AVX512-BF16, importing bitsandbytes tries to download an optional faster 4-bit CPU kernel from
    # a hub and, when it cannot, warns and keeps its own kernel, which is the one every other CPU runs.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def quiet_libraries() -> None:
    filter_known_warnings()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()
