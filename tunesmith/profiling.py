"""Measure wall time and peak memory of a block of work (RSS on CPU, max allocated on GPU)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil


@dataclass
class Usage:
    wall_s: float = 0.0
    start_rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float | None = None


@contextmanager
def measure(interval_s: float = 0.1) -> Iterator[Usage]:
    """Yield a Usage filled in when the block ends; RSS is sampled by a background thread.

    Sampling is used because ru_maxrss only gives the peak of the whole process lifetime, not of one stage.
    """
    import torch

    usage = Usage()
    process = psutil.Process()
    stop = threading.Event()
    peak = [process.memory_info().rss]
    usage.start_rss_mb = peak[0] / 2**20

    def sample() -> None:
        while not stop.wait(interval_s):
            peak[0] = max(peak[0], process.memory_info().rss)

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        yield usage
    finally:
        usage.wall_s = time.perf_counter() - start
        stop.set()
        sampler.join()
        usage.peak_rss_mb = max(peak[0], process.memory_info().rss) / 2**20
        if cuda:
            usage.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20


def settled_rss_mb() -> float:
    """This process's RSS after freeing what it can: the baseline that a stage's own memory is measured above.

    glibc keeps freed memory in its arenas; malloc_trim hands it back so that an earlier stage's garbage does
    not count against the next one.
    """
    release_memory()
    return psutil.Process().memory_info().rss / 2**20


def release_memory() -> None:
    """Collect garbage and hand glibc's freed arenas back to the system."""
    import gc

    gc.collect()
    trim_freed_memory()


def trim_freed_memory() -> None:
    """Hand the pages glibc holds free in its arenas back to the system (no garbage collection: cheap enough to
    call at every training step)."""
    import ctypes
    from contextlib import suppress

    with suppress(OSError, AttributeError):  # not glibc (macOS, musl): the memory stays with the process
        ctypes.CDLL("libc.so.6").malloc_trim(0)
