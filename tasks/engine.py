"""Where the method tasks run: one after another, or as parallel tasks on a Dask or Ray cluster."""

from __future__ import annotations

import os
from typing import Any

from tunesmith.config.schema import ComparisonConfig


def task_runner(settings: ComparisonConfig):
    """A Prefect task runner for the configured engine; None for sequential runs in the flow's process."""
    if settings.engine == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.address:
            return DaskTaskRunner(address=settings.address)
        # Processes, not threads: each method loads its own model and torch state, and a crash stays in its worker.
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": settings.workers, "threads_per_worker": 1, "processes": True,
                            "dashboard_address": None},
        )  # fmt: skip
    if settings.engine == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError as err:
            raise RuntimeError("comparison.engine 'ray' needs prefect-ray: pip install -e '.[ray]'") from err
        if settings.address:  # a running cluster has its own resources
            return RayTaskRunner(address=settings.address)
        return RayTaskRunner(init_kwargs={"num_cpus": settings.workers})
    return None


def run_all(task, runner, calls: list[dict[str, Any]]) -> list:
    """Run `task` once per parameter set and return the final states, in order, failures included."""
    if runner is None:
        return [task(**parameters, return_state=True) for parameters in calls]
    with runner.duplicate() as active:
        futures = [active.submit(task, parameters) for parameters in calls]
        for future in futures:
            future.wait()
        return [future.state for future in futures]


def worker_threads(settings: ComparisonConfig) -> int | None:
    """Torch threads for one method task on a cluster worker (Dask's nanny pins workers to one thread)."""
    if settings.engine == "sequential":
        return None
    return settings.threads_per_worker or max(1, (os.cpu_count() or 1) // settings.workers)


def gpu_for(worker_name, gpus: int) -> int | None:
    """The GPU a local cluster's worker keeps to itself (worker 0 -> GPU 0, 1 -> 1, ...); None with fewer than
    two GPUs or outside a worker."""
    if gpus < 2 or worker_name is None:
        return None
    digits = "".join(ch for ch in str(worker_name).rsplit("-", 1)[-1] if ch.isdigit())
    return int(digits) % gpus if digits else None


def pin_worker_gpu() -> str | None:
    """On a machine with several GPUs, give this Dask worker one of them, before it first touches CUDA: its
    tasks (one search trial at a time) then see a single GPU. Returns the device, for the training slot."""
    import torch

    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return None
    gpu = gpu_for(name, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if gpu is None:
        return None
    if not torch.cuda.is_initialized():
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return f"cuda:{gpu}"
