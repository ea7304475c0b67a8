"""Prefect plumbing shared by the stage tasks: retry policy, the training slot and the failure hook."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from pathlib import Path

from prefect.tasks import exponential_backoff

from tunesmith.console import progress
from tunesmith.errors import TunesmithError
from tunesmith.training.distributed import lifetime


def retry_unless_user_error(task, task_run, state) -> bool:
    """Retry transient failures only: a problem the user has to fix (bad data, a missing model, a server that
    was not there at all) fails the same way every time."""
    try:
        state.result()
    except TunesmithError:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return True


# For tasks that talk to services (MLflow, data stores) and are safe to repeat; never for training itself,
# whose failures (out of memory, divergence) a retry would only repeat.
SERVICE_RETRIES = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=5),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_unless_user_error,
}
HOUR = 3600
LOCKS = Path("~/.cache/tunesmith/locks").expanduser()


def training_slot_name(device: str) -> str:
    """One slot per machine and device: two trainings never share a GPU or the CPU cores."""
    return f"tunesmith-training-{socket.gethostname()}-{device}"


# A crashed holder's lease lapses after this long; the holder renews it every 45 s while it trains.
LEASE_S = 60


def _prefect_server_configured() -> bool:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url is not None


def _ensure_limit(name: str, limit: int = 1) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run may have created it first
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))


@contextmanager
def training_slot(device: str, name: str | None = None) -> Iterator[float]:
    """Hold the machine's training slot; yields how long we waited for it (seconds).

    Against a Prefect server the slot is a global concurrency limit (visible and adjustable in the UI; the
    server takes back the lease of a run that died). Without one, flows run on a short-lived in-process
    server whose leases nobody reclaims, so the slot is an OS file lock instead, which the kernel releases
    when its process dies."""
    name = name or training_slot_name(device)
    start = time.perf_counter()
    if _prefect_server_configured():
        from prefect.concurrency.sync import concurrency

        _ensure_limit(name)
        with concurrency(name, occupy=1, strict=True, lease_duration=LEASE_S):
            yield time.perf_counter() - start
    else:
        from filelock import FileLock, Timeout

        LOCKS.mkdir(parents=True, exist_ok=True)
        lock = FileLock(LOCKS / f"{name}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:  # say why nothing moves: another training on this machine holds the slot
            with progress.bar(f"waiting for the training slot {name} (another training on this machine)", None):
                lock.acquire()
        try:
            yield time.perf_counter() - start
        finally:
            lock.release()


def record_failure(flow, flow_run, state) -> None:
    """Flow hook for failed and crashed runs: append to <output_dir>/failures.jsonl and notify if configured."""
    from prefect.logging import get_run_logger

    from tunesmith.config import load_config

    message = f"flow run {flow_run.name} of {flow.name} ended {state.name}: {state.message}"
    logger = get_run_logger()
    logger.error(message)
    parameters = flow_run.parameters or {}
    try:
        config = load_config(parameters["config_path"], parameters.get("overrides"))
    except Exception as err:  # noqa: BLE001 - the config itself may be why the run failed
        logger.error(f"could not read the run's config to record the failure: {err}")
        return
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "flow": flow.name,
        "flow_run": flow_run.name,
        "flow_run_id": str(flow_run.id),
        "state": state.name,
        "message": state.message,
        "config": parameters.get("config_path"),
    }
    log = Path(config.output_dir) / "failures.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    if config.orchestration.notify_block:
        from prefect.blocks.core import Block

        Block.load(config.orchestration.notify_block).notify(body=message, subject=f"Tunesmith: {flow.name} failed")


def start_temporary_server() -> Future[str]:
    """Start Prefect's temporary local server, as a flow run without PREFECT_API_URL would, but out of the
    terminal's reach. Returns once its process is started; the future holds its API URL once it answers, so the
    caller can import its flow (seconds of torch and transformers) while the server boots.

    Prefect starts it in the terminal's process group, so Ctrl-C stops the server before the interrupted flow
    can record its end, and the flow then retries against a dead server for a minute. Here it runs in a session
    of its own, is stopped when the command exits (Prefect's atexit handler) and, on Linux, when its parent dies.
    """
    import os
    import subprocess
    import sys
    import threading

    import prefect
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    forked = threading.Event()

    class DetachedServer(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen:
            # Prefect's own command and environment for its temporary server (prefect/server/api/server.py).
            command = [
                sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
                "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "error", "--lifespan", "on",
            ]  # fmt: skip
            settings = get_current_settings().to_environment_variables(exclude_unset=True)
            env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                   "PREFECT__SERVER_FINAL": "1", **settings}  # fmt: skip
            # The parent-death signal (Linux; elsewhere the atexit handler is all there is), with libc loaded before
            # the fork, as lifetime.py explains.
            process = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=lifetime.end_with_parent)
            forked.set()
            return process

    server = DetachedServer()  # Prefect's get_client() finds it: the instance for the default port is shared
    started: Future[str] = Future()

    def wait_until_it_answers() -> None:
        try:
            # A first start migrates a new SQLite database: Prefect's 20 s default ran out on a busy 2-core machine.
            # PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, when set, still decides.
            server.start(timeout=None if "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in os.environ else 120)
        except BaseException as err:  # noqa: BLE001 - handed to whoever waits on the future
            started.set_exception(err)
            return
        finally:
            forked.set()
        started.set_result(server.api_url)
        # Linux sends the parent-death signal when the forking *thread* ends: this one lives as long as the server.
        server.server_process.wait()

    threading.Thread(target=wait_until_it_answers, name="prefect-temporary-server", daemon=True).start()
    # The fork happens before the caller's imports start: forking while another thread holds import locks is what
    # the subprocess documentation warns about for preexec_fn.
    forked.wait()
    return started
