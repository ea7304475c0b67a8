"""vLLM as the forgetting benchmarks' scorer: a server started for the stage, asked for prompt log-probabilities
through its OpenAI-compatible completions endpoint (lm-eval's `local-completions` model).

vLLM pins its own torch and transformers, so it cannot share Tunesmith's environment; a server from its own
environment (or image) can, and that is how vLLM is run in production anyway. A LoRA adapter is served as a LoRA
on the base model; other mergeable adapters are merged first; whole models (full, Spectrum) are served as saved.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from tunesmith.config.schema import ForgettingConfig, VllmConfig
from tunesmith.errors import TunesmithError, UsageError
from tunesmith.records import TrainedModel
from tunesmith.training.distributed import lifetime
from tunesmith.training.methods import METHODS

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the values vLLM's --max-lora-rank accepts
BASE_NAME, ADAPTER_NAME = "base", "tuned"
MAX_MODEL_LEN = 4096  # benchmark prompts are short; a longer window only reserves KV cache
LOG_TAIL_LINES = 15


class VllmFailed(TunesmithError):
    """vLLM's server did not start, or stopped while scoring."""


@dataclass(frozen=True)
class Backend:
    name: Literal["hf", "vllm"]
    why: str
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServedModel:
    """What vLLM loads: a model folder, and the LoRA adapter it serves on top of it, if any."""

    path: str
    lora: str | None = None
    lora_rank: int = 0

    @property
    def name(self) -> str:
        return ADAPTER_NAME if self.lora else BASE_NAME


def vllm_can_serve(method: str) -> bool:
    """Whether vLLM can run what `method` trains: a whole model, or an adapter that folds into the base."""
    spec = METHODS.get(method)
    return spec is None or spec.can_merge or not spec.adds_weights  # None: not chosen yet ("auto")


def find_command(settings: VllmConfig) -> list[str] | None:
    command = settings.command or ["vllm", "serve"]
    return command if shutil.which(command[0]) else None


def choose_backend(settings: ForgettingConfig, device: str, methods: Iterable[str] = ()) -> Backend:
    """Who scores the benchmarks; forgetting.backend vllm where vLLM cannot run is refused before any work."""
    if settings.backend == "hf":
        return Backend("hf", "forgetting.backend hf")
    command = find_command(settings.vllm)
    unservable = sorted({m for m in methods if not vllm_can_serve(m)})
    if settings.backend == "vllm":
        if command is None:
            wanted = " ".join(settings.vllm.command or ["vllm", "serve"])
            raise UsageError(
                f"forgetting.backend is vllm, but `{wanted}` cannot be found",
                "forgetting.vllm.command",
                "install vLLM in its own environment (python -m venv /opt/vllm && /opt/vllm/bin/pip install vllm) "
                "and set forgetting.vllm.command: [/opt/vllm/bin/vllm, serve], or set forgetting.backend: hf",
            )
        if unservable:
            raise UsageError(
                f"forgetting.backend is vllm, but vLLM cannot run what {', '.join(unservable)} trains "
                "(an adapter that does not fold into the base model's weights)",
                "forgetting.backend",
                "set forgetting.backend: auto or hf",
            )
        return Backend("vllm", "forgetting.backend vllm", tuple(command))
    if device != "cuda":
        return Backend("hf", f"forgetting.backend auto on {device}")
    if command is None:
        return Backend("hf", "forgetting.backend auto: vLLM not found (forgetting.vllm.command)")
    if unservable:
        return Backend("hf", f"forgetting.backend auto: vLLM cannot run what {', '.join(unservable)} trains")
    return Backend("vllm", "forgetting.backend auto on cuda: vLLM found", tuple(command))


def _served_as_lora(adapter_dir: Path) -> int | None:
    """The --max-lora-rank to serve this PEFT adapter as a LoRA with; None when vLLM cannot (DoRA, extra modules,
    per-layer ranks): it is merged instead."""
    config_file = adapter_dir / "adapter_config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text(encoding="utf-8"))
    plain = (
        config.get("peft_type") == "LORA"
        and not config.get("use_dora")
        and not config.get("modules_to_save")
        and not config.get("rank_pattern")
        and not config.get("alpha_pattern")
    )
    rank = int(config.get("r", 0))
    return next((r for r in LORA_RANKS if r >= rank), None) if plain else None


def served_trained(base_path: str, trained: TrainedModel, merge: Callable[[], str], lora: bool = False) -> ServedModel:
    """How vLLM serves a trained model: whole, merged (`merge` writes it and returns its folder, when training did
    not), or with `lora` a plain LoRA adapter as a LoRA on the base."""
    spec = METHODS[trained.method]
    if not spec.adds_weights:
        return ServedModel(trained.output_dir)
    rank = _served_as_lora(Path(trained.output_dir)) if lora else None
    if rank is not None:
        return ServedModel(base_path, trained.output_dir, rank)
    if spec.can_merge:
        return ServedModel(trained.merged_dir or merge())
    raise UsageError(f"vLLM cannot run what {trained.method} trains", "forgetting.backend", "set it to hf")


def max_model_len(model_path: str) -> int:
    config = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    return min(int(config.get("max_position_embeddings") or MAX_MODEL_LEN), MAX_MODEL_LEN)


def server_command(command: Iterable[str], served: ServedModel, dtype: str, port: int, seed: int,
                   extra: Iterable[str] = ()) -> list[str]:  # fmt: skip
    argv = [*command, "--model", served.path, "--served-model-name", BASE_NAME, "--host", "127.0.0.1",
            "--port", str(port), "--dtype", dtype, "--max-model-len", str(max_model_len(served.path)),
            "--seed", str(seed)]  # fmt: skip
    if served.lora:
        argv += ["--enable-lora", "--max-loras", "1", "--max-lora-rank", str(served.lora_rank),
                 "--lora-modules", f"{ADAPTER_NAME}={served.lora}"]  # fmt: skip
    return argv + list(extra)


def _tail(log_path: Path) -> str:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines() if log_path.exists() else []
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _wait_ready(process: subprocess.Popen, url: str, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise VllmFailed(
                f"vLLM's server exited with code {process.returncode} before it was ready:\n{_tail(log_path)}",
                str(log_path),
                "read the server's log; flags for it go in forgetting.vllm.args",
            )
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise VllmFailed(
        f"vLLM's server was not ready after {timeout_s:g} s:\n{_tail(log_path)}",
        str(log_path),
        "raise forgetting.vllm.startup_timeout_s, or read the server's log",
    )


def _release_cuda_cache() -> None:
    """vLLM sizes its KV cache from the GPU memory free when it starts: give back what this process cached."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


@contextmanager
def vllm_server(
    command: Iterable[str], served: ServedModel, dtype: str, seed: int, settings: VllmConfig, log_path: Path
) -> Iterator[str]:
    """Start vLLM's server for `served` on a free loopback port, yield its base URL, stop it (its whole process
    group) on the way out, however the block ends."""
    port = lifetime.free_port()
    argv = server_command(command, served, dtype, port, seed, settings.args)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _release_cuda_cache()
    with log_path.open("w", encoding="utf-8") as log:
        log.write(" ".join(argv) + "\n")
        log.flush()
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lifetime.end_with_parent if lifetime.AVAILABLE else None,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(process, url, settings.startup_timeout_s, log_path)
            yield url
        finally:
            lifetime.stop_group(process)
