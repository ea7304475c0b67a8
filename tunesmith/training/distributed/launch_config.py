"""The accelerate config a distributed training is launched with, generated from training.distributed.

accelerate's launcher picks DDP, FSDP or DeepSpeed from `distributed_type`; the Trainer inside each process reads
the same choice from the environment the launcher sets. Two things are not obvious:
- On CPUs, accelerate's MULTI_CPU type starts a single process (it expects mpirun around it). DDP over gloo is
  launched as MULTI_GPU (torchrun underneath) with `use_cpu`, and the worker's environment says
  ACCELERATE_USE_CPU so each process is a CPU rank of one job, not an independent copy.
- FSDP2 is FSDP with fsdp_version 2; the state dict is gathered in full on save so the saved model (or adapter)
  loads like any other.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml

from tunesmith.config.schema import DistributedConfig
from tunesmith.records import Precision
from tunesmith.training.distributed.strategies import strategy

MIXED_PRECISION = {"float32": "no", "bfloat16": "bf16", "float16": "fp16"}


def check_strategy(distributed: DistributedConfig, device: str) -> None:
    """Before any work: the strategy can run on this machine (sharding needs CUDA, DeepSpeed its package)."""
    from tunesmith.errors import UsageError

    where = "training.distributed.strategy"
    chosen = strategy(distributed.strategy)
    if chosen.needs_cuda and device != "cuda":
        raise UsageError(f"training.distributed.strategy {distributed.strategy} needs CUDA GPUs and this machine "
                         "has none (FSDP and DeepSpeed do not run on CPUs through transformers)", where,
                         "use strategy ddp (gloo ranks on CPUs) or none")  # fmt: skip
    if chosen.package and importlib.util.find_spec(chosen.package) is None:
        extra = f'pip install "tunesmith[{chosen.package}]", or use fsdp2'
        raise UsageError(f"training.distributed.strategy {distributed.strategy} needs {chosen.package}, which "
                         "is not installed", where, extra)  # fmt: skip
    if distributed.active and device == "cuda":
        resolved_processes(distributed, visible_gpus())
    elif distributed.active and distributed.num_processes == "auto":
        raise UsageError("training.distributed.num_processes 'auto' counts GPUs and this machine has none",
                         "training.distributed.num_processes", "set a number of CPU processes, e.g. 2")  # fmt: skip


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def resolved_processes(distributed: DistributedConfig, gpus: int) -> int:
    """Processes per node: the configured number, or every visible GPU."""
    if distributed.num_processes != "auto":
        return int(distributed.num_processes)
    if gpus < 1:
        raise ValueError(
            "training.distributed.num_processes 'auto' counts GPUs and none is visible: set a number "
            "(on CPUs, processes that train together over gloo)"
        )
    return gpus


def training_devices(distributed: DistributedConfig, on_gpu: bool) -> int:
    """How many processes train together, on all nodes."""
    if not distributed.active:
        return 1
    gpus = visible_gpus() if on_gpu else 0
    return resolved_processes(distributed, gpus) * distributed.nnodes


def accelerate_config(
    distributed: DistributedConfig,
    precision: Precision,
    processes_per_node: int,
    gradient_accumulation_steps: int,
    gradient_checkpointing: bool = False,
) -> dict[str, Any]:
    """The accelerate YAML (as a dict) for this strategy, process count and precision."""
    cpu = precision.device != "cuda"
    if cpu and strategy(distributed.strategy).needs_cuda:
        raise ValueError(
            f"training.distributed.strategy {distributed.strategy} needs CUDA GPUs (FSDP and DeepSpeed do not run "
            "on CPUs through transformers): use ddp on CPUs"
        )
    total = processes_per_node * distributed.nnodes
    kind = strategy(distributed.strategy).accelerate_type
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        # accelerate refuses MULTI_GPU with one process: DDP over one process is a plain run
        "distributed_type": "NO" if distributed.strategy == "ddp" and total == 1 else kind,
        "num_machines": distributed.nnodes,
        "machine_rank": distributed.node_rank,
        "num_processes": total,  # accelerate counts all nodes' processes
        "mixed_precision": MIXED_PRECISION[precision.dtype],
        "use_cpu": cpu,
        "gpu_ids": "all",
        "rdzv_backend": "c10d" if distributed.nnodes > 1 else "static",
        "same_network": True,
        "main_training_function": "main",
        "downcast_bf16": "no",
        "debug": False,
    }
    if distributed.rdzv_endpoint:
        host, port = distributed.rdzv_endpoint.rsplit(":", 1)
        config |= {"main_process_ip": host, "main_process_port": int(port)}
    if distributed.strategy == "fsdp2":
        config["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": distributed.cpu_offload,
            "fsdp_activation_checkpointing": gradient_checkpointing,
        }
    elif distributed.strategy.startswith("deepspeed"):
        offload = "cpu" if distributed.cpu_offload else "none"
        stage = 3 if distributed.strategy == "deepspeed_zero3" else 2
        config["deepspeed_config"] = {
            "zero_stage": stage,
            "gradient_accumulation_steps": gradient_accumulation_steps,
            "gradient_clipping": 1.0,
            "offload_optimizer_device": offload,
            "offload_param_device": offload if stage == 3 else "none",
            "zero3_init_flag": stage == 3,
            "zero3_save_16bit_model": stage == 3,  # the saved model is whole, not ZeRO shards
        }
    return config


def write_accelerate_config(config: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
