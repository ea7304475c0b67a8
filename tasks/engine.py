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
