"""Launch a distributed training as its own job and wait for it.

The job is `accelerate launch` on the worker module, started in a session of its own. It is stopped when the
pipeline's task is cancelled or times out (the exception reaches the `finally` below: SIGTERM to the launcher's
group, whose torchrun agent stops its ranks) and when the pipeline's process dies (the kernel signals the
launcher). Each rank also ends when the launcher does, however it ends (tunesmith/training/distributed/lifetime).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from tunesmith.config.schema import DistributedConfig
from tunesmith.console import progress
from tunesmith.errors import TunesmithError
from tunesmith.records import TrainedModel
from tunesmith.training.distributed import events, lifetime
from tunesmith.training.distributed.launch_config import accelerate_config, write_accelerate_config
from tunesmith.training.distributed.multinode import write_node_files
from tunesmith.training.distributed.spec import TrainingSpec

log = logging.getLogger("tunesmith.training.distributed")
TAIL_LINES = 8  # of the job's output, in a failure's message (job.log has all of it)
LINE_CHARS = 300


class DistributedTrainingFailed(TunesmithError):
    """The distributed training job ended without a trained model."""


def launch_command(
    config_file: Path, spec_path: Path, distributed: DistributedConfig, port: int | None = None
) -> list[str]:
    """accelerate's launcher on the worker module; the rendezvous comes from the config file (multi-node) or the
    given port (one node)."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file)]
    if distributed.nnodes == 1 and port is not None and not distributed.accelerate_config:
        command += ["--main_process_port", str(port)]
    return command + ["--module", "tunesmith.training.distributed.worker", str(spec_path)]


def job_environment(cpu: bool, processes_per_node: int) -> dict[str, str]:
    env = dict(os.environ) | {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    if cpu:
        # Without it each torchrun rank is an independent single-process run rather than a gloo rank of one job.
        env["ACCELERATE_USE_CPU"] = "true"
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes_per_node)))
    return env


def run_job(command: list[str], env: dict[str, str], folder: Path, description: str) -> None:
    """Run the job, showing rank 0's progress and logging its other output; a failure names its last lines."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    with (folder / "job.log").open("w", encoding="utf-8") as job_log, progress.bar("step", None) as bar:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group: stopped as one
            preexec_fn=lifetime.end_with_parent if lifetime.AVAILABLE else None,
        )
        (folder / "launcher.pid").write_text(str(process.pid))
        try:
            for line in process.stdout:
                event = events.parse(line)
                if event is None:
                    job_log.write(line)
                    job_log.flush()
                    tail.append(line.rstrip())
                    log.debug(line.rstrip())
                    continue
                bar.total = event["total"]
                if event["event"] == "started":
                    bar.resume_at(event["completed"])
                progress.advance(event["completed"] - bar.completed, bar=bar, **event["fields"])
            code = process.wait()
        finally:
            lifetime.stop_group(process)
    if code != 0:
        last = "\n".join(f"  | {line[:LINE_CHARS]}" for line in tail if line.strip())
        first = first_error((folder / "job.log").read_text(encoding="utf-8", errors="replace"))
        raise DistributedTrainingFailed(
            f"{description} exited with code {code}"
            + (f"; first error in the job: {first}" if first else "")
            + f"\nits last lines:\n{last}",
            str(folder / "job.log"),
            "read the job's log; a rerun of the same config resumes from the last checkpoint",
        )


RANK_PREFIX = re.compile(r"^\[(?:rank|default)\d+\]:\s?")
# "ValueError: ...", "torch.OutOfMemoryError: ...", "KeyboardInterrupt": not a caret line ("^^^^") that another
# rank's output, written to the same pipe, left at the start of a line.
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?::\s|$)")


def first_error(log_text: str) -> str | None:
    """The exception line of the first Python traceback in the job's output (a rank's own error; the launcher's
    summary of failed children comes after it)."""
    in_traceback = False
    for raw in log_text.splitlines():
        line = RANK_PREFIX.sub("", raw)
        if line.startswith("Traceback (most recent call last)"):
            in_traceback = True
        elif in_traceback and EXCEPTION_LINE.match(line):
            return line.strip()[:LINE_CHARS]
    return None


def launch_training(spec: TrainingSpec, distributed: DistributedConfig, processes_per_node: int) -> TrainedModel:
    """Train under `distributed` with `processes_per_node` processes on this node; rank 0's result."""
    precision = spec.precision_record()
    training = spec.training_config()
    spec.ranks_dir.mkdir(parents=True, exist_ok=True)
    for stale in (*spec.ranks_dir.glob("rank-*.json"), spec.result_path):
        stale.unlink(missing_ok=True)
    spec_path = spec.write()
    config_file = distributed.accelerate_config or write_accelerate_config(
        accelerate_config(
            distributed, precision, processes_per_node, training.gradient_accumulation_steps,
            training.gradient_checkpointing,
        ),
        spec.folder / "accelerate.yaml",
    )  # fmt: skip
    if distributed.nnodes > 1:
        shared = Path(spec.checkpoint_dir).parent.parent if spec.checkpoint_dir else spec.folder
        name = Path(spec.out_dir).parent.name
        script, manifest = write_node_files(spec.folder, name, Path(config_file), spec_path, distributed,
                                            processes_per_node, shared)  # fmt: skip
        log.info(f"node {distributed.node_rank} of {distributed.nnodes}; every node's command: {script}; "
                 f"for Kubernetes: {manifest}")  # fmt: skip
    command = launch_command(Path(config_file), spec_path, distributed, lifetime.free_port())
    (spec.folder / "command.txt").write_text(" ".join(command) + "\n")
    description = f"{distributed.strategy} training ({processes_per_node * distributed.nnodes} processes)"
    run_job(command, job_environment(precision.device != "cuda", processes_per_node), spec.folder, description)
    if not spec.result_path.is_file():
        raise DistributedTrainingFailed(
            f"{description} finished without rank 0's result", str(spec.result_path), "read job.log beside it"
        )
    return TrainedModel(**json.loads(spec.result_path.read_text(encoding="utf-8")))
