"""Training over several processes: a real two-process DDP job on the CPU (gloo), launched by the pipeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import LABELS, copy_store, write_config
from tunesmith.config.schema import DistributedConfig, TrainingConfig
from tunesmith.records import Precision
from tunesmith.training.distributed.launch_config import accelerate_config, write_accelerate_config
from tunesmith.training.distributed.launcher import DistributedTrainingFailed
from tunesmith.training.distributed.spec import TrainingSpec
from tunesmith.training.stage import train

CPU32 = Precision("cpu", "float32", "tests")
GPU_BF16 = Precision("cuda", "bfloat16", "tests")

DDP = """decision:
  force: finetune
training:
  method: lora
  max_steps: 200
  learning_rate: 0.003
  batch_size: 4
  eval_steps: 10
  save_steps: 10
  early_stopping_patience: null
  distributed:
    strategy: ddp
    num_processes: 2
evaluation:
  max_examples: 8
forgetting:
  enabled: false
tracking:
  experiment: ddp
"""


def _run(config: Path, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "tunesmith.flows.cli", "run", str(config)]
    return subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.e2e
def test_ddp_on_two_cpu_processes_trains_one_model_and_resumes_after_the_job_is_killed(
    tmp_path, tiny_model, learnable_tickets, empty_mlflow_store
):
    config = write_config(tmp_path / "run.yaml", learnable_tickets, tiny_model, DDP)
    env = os.environ | {"MLFLOW_TRACKING_URI": copy_store(empty_mlflow_store, tmp_path), "PYTHONUNBUFFERED": "1"}
    runs = tmp_path / "runs"

    first = _run(config, env)
    deadline = time.time() + 600  # curation, baselines and the launch come first; a shared machine is slower
    while not list((runs / "checkpoints").glob("*/checkpoint-20/trainer_state.json")):
        assert first.poll() is None, first.stdout.read().decode()[-3000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    launcher = next(runs.glob("*/training/distributed/launcher.pid"))
    os.killpg(int(launcher.read_text()), signal.SIGKILL)  # the whole job: launcher and both ranks
    output = first.communicate(timeout=120)[0].decode()
    assert first.returncode != 0
    assert "ddp training (2 processes) exited with code" in output, output[-3000:]

    second = _run(config, env)
    output = second.communicate(timeout=600)[0].decode()
    assert second.returncode == 0, output[-3000:]

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("ddp")
    training = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "training"]
    finished = [r for r in training if r.info.status == "FINISHED"]
    assert len(finished) == 1
    metrics = finished[0].data.metrics
    assert 20 <= metrics["resumed_from_step"] < 200 and metrics["steps"] == 200
    assert metrics["world_size"] == 2 and metrics["rank0_tokens_per_s"] > 0 and metrics["rank1_tokens_per_s"] > 0
    logged = {a.path for a in client.list_artifacts(finished[0].info.run_id, "distributed/ranks")}
    assert logged == {"distributed/ranks/rank-0.json", "distributed/ranks/rank-1.json"}

    reports = [json.loads(p.read_text()) for p in sorted(runs.glob("*/training/distributed/ranks/rank-*.json"))]
    latest = [r for r in reports if r["steps"] == 200]
    assert sorted(r["rank"] for r in latest) == [0, 1]
    assert all(r["world_size"] == 2 and r["num_processes"] == 2 for r in latest)  # one job, not two copies
    assert latest[0]["weights_sha256"] == latest[1]["weights_sha256"]  # the ranks stayed in step

    history = json.loads(
        Path(client.download_artifacts(finished[0].info.run_id, "loss_history.json", str(tmp_path))).read_text()
    )
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < 0.7 * losses[0]  # the resumed job kept learning

    versions = client.search_model_versions("name = 'test-run'")
    assert len(versions) == 1

    # What rank 0 saved is an ordinary trained model: `tunesmith predict` loads it and answers with a label.
    from tunesmith.serving.predict import Predictor, read_requests

    (model_dir,) = [p.parent for p in runs.glob("*/training/model/tunesmith_model.json")]
    rows = Predictor(str(model_dir), precision="float32").predict(list(read_requests(["ASAP: the site is down"])))
    assert rows[0]["output"] in LABELS and 0 < rows[0]["probability"] <= 1


def _spec(tmp_path, model: Path | str, **training) -> TrainingSpec:
    from tests.test_training import _memorisable_set

    train_path, val_path = _memorisable_set(tmp_path)
    config = TrainingConfig(max_steps=4, batch_size=4, max_seq_length=64, **training)
    return TrainingSpec.for_files(str(model), str(train_path), str(val_path), "Classify.", config, "lora", CPU32,
                                  tmp_path / "out", checkpoint_dir=tmp_path / "ckpt")  # fmt: skip


def test_a_failed_job_is_a_clear_error_with_its_last_lines(tmp_path):
    broken = tmp_path / "not-a-model"
    broken.mkdir()  # no tokenizer in it: every rank fails as it starts
    spec = _spec(tmp_path, broken, distributed={"strategy": "ddp", "num_processes": 2})
    with pytest.raises(DistributedTrainingFailed) as failure:
        train(spec)
    message = str(failure.value)
    assert "ddp training (2 processes) exited with code" in message
    # the ranks' own error, not only the launcher's summary that follows it
    assert "first error in the job: ValueError: Couldn't instantiate the backend tokenizer" in message
    assert (spec.folder / "job.log").is_file() and (spec.folder / "spec.json").is_file()


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2", "deepspeed_zero2", "deepspeed_zero3"])
def test_generated_accelerate_configs_load_with_accelerates_own_loader(strategy, tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    distributed = DistributedConfig(strategy=strategy, num_processes=4, nnodes=2, node_rank=1,
                                    rdzv_endpoint="node0.example:29500")  # fmt: skip
    path = write_accelerate_config(accelerate_config(distributed, GPU_BF16, 4, 2), tmp_path / "accelerate.yaml")
    loaded = load_config_from_file(str(path))
    expected = {"ddp": DistributedType.MULTI_GPU, "fsdp2": DistributedType.FSDP,
                "deepspeed_zero2": DistributedType.DEEPSPEED, "deepspeed_zero3": DistributedType.DEEPSPEED}  # fmt: skip
    assert loaded.distributed_type == expected[strategy]
    assert (loaded.num_processes, loaded.num_machines, loaded.machine_rank) == (8, 2, 1)  # all nodes' processes
    assert (loaded.main_process_ip, loaded.main_process_port) == ("node0.example", 29500)
    assert loaded.mixed_precision == "bf16" and not loaded.use_cpu
    if strategy == "fsdp2":
        assert loaded.fsdp_config["fsdp_version"] == 2
        assert loaded.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # a saved model loads anywhere
    if strategy.startswith("deepspeed"):
        stage = int(strategy[-1])
        assert loaded.deepspeed_config["zero_stage"] == stage
        assert loaded.deepspeed_config["gradient_accumulation_steps"] == 2
        assert loaded.deepspeed_config["zero3_save_16bit_model"] is (stage == 3)


def test_cpu_ddp_is_launched_as_torchrun_ranks_not_accelerates_single_process_cpu_type(tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    config = accelerate_config(DistributedConfig(strategy="ddp", num_processes=2), CPU32, 2, 1)
    loaded = load_config_from_file(str(write_accelerate_config(config, tmp_path / "a.yaml")))
    # MULTI_CPU would start one process; MULTI_GPU with use_cpu starts two gloo ranks through torchrun.
    assert loaded.distributed_type == DistributedType.MULTI_GPU and loaded.use_cpu
    assert loaded.num_processes == 2 and loaded.mixed_precision == "no"


@pytest.mark.parametrize("strategy", ["fsdp2", "deepspeed_zero2", "deepspeed_zero3"])
def test_sharding_strategies_need_gpus(strategy):
    with pytest.raises(ValueError, match="needs CUDA GPUs"):
        accelerate_config(DistributedConfig(strategy=strategy, num_processes=2), CPU32, 2, 1)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"strategy": "ddp", "nnodes": 2}, "needs rdzv_endpoint"),
        ({"strategy": "ddp", "nnodes": 2, "node_rank": 2, "rdzv_endpoint": "h:1"}, "node_rank 2 must be below"),
        ({"strategy": "ddp", "nnodes": 2, "rdzv_endpoint": "no-port"}, "must be host:port"),
        ({"strategy": "none", "nnodes": 2, "rdzv_endpoint": "h:1"}, "need a strategy"),
        ({"strategy": "ddp", "num_processes": 0}, "at least 1"),
        ({"strategy": "zero9"}, "strategy"),
    ],
)
def test_invalid_distributed_settings_are_config_errors(settings, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        TrainingConfig(distributed=settings)


def test_every_node_gets_its_own_launch_command_and_the_others_a_kubernetes_job(tmp_path):
    from tunesmith.training.distributed.multinode import write_node_files

    distributed = DistributedConfig(strategy="fsdp2", num_processes=8, nnodes=3, rdzv_endpoint="10.0.0.5:29400",
                                    image="registry.internal/tunesmith:1.2", volume_claim="runs")  # fmt: skip
    folder = tmp_path / "runs" / "20261126-run-abc" / "training" / "distributed"
    folder.mkdir(parents=True)
    config_file, spec_path = folder / "accelerate.yaml", folder / "spec.json"
    script, manifest = write_node_files(folder, "20261126-Run_abc", config_file, spec_path, distributed, 8,
                                        tmp_path / "runs")  # fmt: skip

    commands = [line for line in script.read_text().splitlines() if line.startswith("accelerate launch")]
    assert len(commands) == 3
    for rank, command in enumerate(commands):
        assert f"--machine_rank {rank} " in command and "--num_machines 3" in command
        assert "--main_process_ip 10.0.0.5 --main_process_port 29400" in command
        assert command.endswith(f"--module tunesmith.training.distributed.worker {spec_path}")

    (job,) = list(yaml.safe_load_all(manifest.read_text()))
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2  # nodes 1 and 2: node 0 is the pipeline
    assert job["metadata"]["name"] == "t-20261126-run-abc"  # a valid Kubernetes name
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    shell_command = container["command"][-1]
    assert "--machine_rank $((JOB_COMPLETION_INDEX + 1))" in shell_command  # unquoted: the shell evaluates it
    assert "--main_process_ip 10.0.0.5" in shell_command and f"--config_file {config_file}" in shell_command
    assert container["image"] == "registry.internal/tunesmith:1.2"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert {m["mountPath"] for m in container["volumeMounts"]} == {str(tmp_path / "runs"), "/dev/shm"}
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "runs"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"strategy": "fsdp2", "num_processes": 2}, "fsdp2 needs CUDA GPUs"),
        ({"strategy": "deepspeed_zero3", "num_processes": 2}, "deepspeed_zero3 needs CUDA GPUs"),
        ({"strategy": "ddp"}, "'auto' counts GPUs and this machine has none"),
    ],
)
def test_a_strategy_this_machine_cannot_run_stops_before_any_work(settings, message):
    from tunesmith.errors import UsageError
    from tunesmith.training.distributed.launch_config import check_strategy

    with pytest.raises(UsageError, match=message):
        check_strategy(DistributedConfig(**settings), "cpu")
    check_strategy(DistributedConfig(strategy="ddp", num_processes=2), "cpu")  # gloo ranks: fine


CHILD = """
import subprocess, sys, time
rank = "from tunesmith.training.distributed import lifetime; lifetime.end_with_parent(); import time; time.sleep(120)"
grandchild = subprocess.Popen([sys.executable, "-c", rank], start_new_session=True)  # as torchrun starts a rank
open(sys.argv[1], "w").write(str(grandchild.pid))
for i in range(120):
    print("step", i, flush=True)
    time.sleep(0.5)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state != "Z"


def test_a_task_that_times_out_stops_the_whole_job(tmp_path, prefect_server):
    """The job's own children in sessions of their own too (as torchrun starts ranks) end with it."""
    from prefect import flow, task

    from tunesmith.training.distributed import lifetime
    from tunesmith.training.distributed.launcher import run_job

    pids = tmp_path / "grandchild.pid"
    script = tmp_path / "job.py"
    script.write_text(CHILD)

    @task(timeout_seconds=4)
    def train_for_too_long():
        run_job([sys.executable, str(script), str(pids)], dict(os.environ), tmp_path, "test job")

    @flow
    def pipeline():
        train_for_too_long()

    assert lifetime.AVAILABLE
    state = pipeline(return_state=True)
    assert state.is_failed()
    launcher = int((tmp_path / "launcher.pid").read_text())
    deadline = time.time() + 30
    while (_alive(launcher) or _alive(int(pids.read_text()))) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(launcher), "the launcher outlived the task"
    assert not _alive(int(pids.read_text())), "a rank in its own session outlived the task"
    assert "step 1" in (tmp_path / "job.log").read_text()


@pytest.mark.parametrize(("strategy", "stored_as"), [("fsdp2", "bfloat16"), ("deepspeed_zero3", "bfloat16"),
                                                     ("ddp", "uint8"), ("none", "uint8")])  # fmt: skip
def test_qlora_stores_4_bit_weights_in_the_compute_dtype_when_they_are_sharded(strategy, stored_as):
    import torch

    from tunesmith.training.methods.qlora import QLoraSettings, quantization_config

    config = quantization_config(QLoraSettings(), GPU_BF16, strategy)
    assert config.bnb_4bit_quant_storage == getattr(torch, stored_as)
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


def test_the_first_error_skips_lines_two_ranks_interleaved():
    """Two ranks write to one pipe: a caret line of one can start a line before the other's code line."""
    from tunesmith.training.distributed.launcher import first_error

    log = (
        "[rank1]: Traceback (most recent call last):\n"
        '[rank1]:   File "x.py", line 3, in <module>\n'
        "[rank1]: ^^^^^^^^^    return train_model(\n"
        "[rank1]: During handling of the above exception, another exception occurred:\n"
        "[rank1]: ValueError: Couldn't instantiate the backend tokenizer\n"
        "[rank0]: ValueError: later\n"
    )
    assert first_error(log) == "ValueError: Couldn't instantiate the backend tokenizer"
    assert first_error("Traceback (most recent call last):\ntorch.OutOfMemoryError: CUDA out of memory") == (
        "torch.OutOfMemoryError: CUDA out of memory"
    )
