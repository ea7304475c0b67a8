"""Training on several nodes: the command each node runs, and a Kubernetes manifest that runs them all.

Every node runs the same `accelerate launch` with its own machine rank; node 0 hosts the rendezvous at
training.distributed.rdzv_endpoint. The run folder (spec, data splits, checkpoints) must be on storage every node
sees at the same path, as the checkpoints are shared for resuming.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from tunesmith.config.schema import DistributedConfig

WORKER = "tunesmith.training.distributed.worker"


def node_command(config_file: Path, spec_path: Path, distributed: DistributedConfig, node_rank: int | str) -> str:
    """The launch command for one node (node_rank may be a shell expression such as $JOB_COMPLETION_INDEX)."""
    host, port = (distributed.rdzv_endpoint or "127.0.0.1:29500").rsplit(":", 1)
    parts = ["accelerate", "launch", "--config_file", str(config_file), "--num_machines", str(distributed.nnodes),
             "--machine_rank", str(node_rank), "--main_process_ip", host, "--main_process_port", port,
             "--module", WORKER, str(spec_path)]  # fmt: skip
    return " ".join(part if part.startswith("$") else shlex.quote(part) for part in parts)


def node_commands(config_file: Path, spec_path: Path, distributed: DistributedConfig) -> list[str]:
    return [node_command(config_file, spec_path, distributed, rank) for rank in range(distributed.nnodes)]


def kubernetes_manifest(
    name: str,
    config_file: Path,
    spec_path: Path,
    distributed: DistributedConfig,
    processes_per_node: int,
    image: str,
    shared_volume_claim: str,
    shared_path: Path,
) -> list[dict[str, Any]]:
    """An Indexed Job with one pod for each node but node 0, which is the pipeline's own: pod i is node rank i + 1
    (Kubernetes sets JOB_COMPLETION_INDEX) and joins node 0's rendezvous at training.distributed.rdzv_endpoint."""
    command = node_command(config_file, spec_path, distributed, "$((JOB_COMPLETION_INDEX + 1))")
    labels = {"app.kubernetes.io/name": "tunesmith-training", "tunesmith/job": name}
    container = {
        "name": "train",
        "image": image,
        "command": ["/bin/sh", "-c", command],
        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}, {"name": "NCCL_DEBUG", "value": "WARN"}],
        "resources": {"limits": {"nvidia.com/gpu": processes_per_node}},
        "volumeMounts": [{"name": "shared", "mountPath": str(shared_path)}, {"name": "dshm", "mountPath": "/dev/shm"}],
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": distributed.nnodes - 1,
            "parallelism": distributed.nnodes - 1,
            "backoffLimit": 0,  # a failed rank fails the job; rerunning the pipeline resumes from the checkpoint
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": [
                        {"name": "shared", "persistentVolumeClaim": {"claimName": shared_volume_claim}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory"}},  # NCCL's shared memory
                    ],
                },
            },
        },
    }
    return [job]


def job_name(text: str) -> str:
    """A Kubernetes object name (DNS label: lowercase letters, digits and '-', at most 63 characters)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return (name[:63].rstrip("-") or "tunesmith-training") if name[:1].isalpha() else f"t-{name}"[:63].rstrip("-")


def write_node_files(
    folder: Path, name: str, config_file: Path, spec_path: Path, distributed: DistributedConfig,
    processes_per_node: int, shared_path: Path,
) -> tuple[Path, Path]:  # fmt: skip
    """nodes.sh (one command per node) and kubernetes.yaml beside the spec; returns their paths."""
    commands = node_commands(config_file, spec_path, distributed)
    script = folder / "nodes.sh"
    script.write_text(
        "# Run the line for each node on that node, with the same Tunesmith and the run folder at the same path.\n"
        + "".join(f"# node {rank}\n{command}\n" for rank, command in enumerate(commands)),
        encoding="utf-8",
    )
    manifest = folder / "kubernetes.yaml"
    documents = kubernetes_manifest(job_name(name), config_file, spec_path, distributed, processes_per_node,
                                    distributed.image, distributed.volume_claim, shared_path)  # fmt: skip
    manifest.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return script, manifest
