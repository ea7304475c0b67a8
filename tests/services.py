"""Real servers for end-to-end tests: `prefect server`, a Prefect worker and `mlflow server`, each a
subprocess on loopback, started and stopped by the test that needs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not come up in {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@contextmanager
def background(command: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> Iterator:
    """Run a process in its own process group; stop the whole group (server workers, flow runs) on exit."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def prefect_server(home: Path) -> Iterator[dict[str, str]]:
    """A Prefect server with its own SQLite database; yields the environment that points clients at it."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with background(command, home / "server.log", env) as process:
        api = f"http://127.0.0.1:{port}/api"
        wait_until_up(f"{api}/health", process, home / "server.log")
        yield {**env, "PREFECT_API_URL": api}


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """An MLflow tracking server as a team runs it: database backend, artifacts served over HTTP."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    command = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts",
    ]  # fmt: skip
    # Without MLflow's job runner (eight worker processes for its GenAI jobs, which Tunesmith does not use).
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with background(command, root / "server.log", env) as process:
        uri = f"http://127.0.0.1:{port}"
        wait_until_up(f"{uri}/health", process, root / "server.log")
        yield uri
