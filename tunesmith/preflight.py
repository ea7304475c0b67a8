"""Services a run depends on, checked before any work starts.

A tracking server that does not answer is found in seconds with one clear message, instead of after MLflow's
own retries and the task's retries have spent minutes on it. The retries stay, for the transient failures of a
server that was there when the run started.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import httpx

from tunesmith.errors import ServiceUnreachable

TIMEOUT_S = 5.0


def _reason(error: httpx.HTTPError, timeout_s: float) -> str:
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {timeout_s:g} s"
    text = str(error) or type(error).__name__
    if "refused" in text.lower():
        return "connection refused: nothing listens there"
    if "name or service not known" in text.lower() or "nodename nor servname" in text.lower():
        return "the host name does not resolve"
    return text


def check_http(url: str, what: str, where: str, fix: str, path: str = "", timeout_s: float = TIMEOUT_S) -> None:
    """GET url + path: any HTTP answer counts (even 401 or 404: the server is there); none raises
    ServiceUnreachable."""
    try:
        httpx.get(url.rstrip("/") + path, timeout=timeout_s)
    except httpx.HTTPError as err:
        raise ServiceUnreachable(f"{what} at {url} does not answer ({_reason(err, timeout_s)})", where, fix) from None


def check_tracking(uri: str, where: str, timeout_s: float = TIMEOUT_S) -> None:
    """The MLflow tracking server answers, or a SQLite store's folder exists (other stores are not checked)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        check_http(
            uri,
            "the MLflow tracking server",
            where,
            "start the server (mlflow server --host 0.0.0.0 --port 5000 ...), correct the address, or unset "
            "MLFLOW_TRACKING_URI and tracking.tracking_uri to log to a local SQLite store (mlflow.db)",
            "/health",
            timeout_s,
        )
    elif parsed.scheme == "sqlite":
        folder = Path(uri.removeprefix("sqlite:///")).expanduser().parent
        if not folder.is_dir():
            raise ServiceUnreachable(
                f"the MLflow database {uri} would lie in a folder that does not exist ({folder})",
                where,
                "create the folder or correct the tracking URI",
            )


def check_prefect_api(url: str | None, timeout_s: float = TIMEOUT_S) -> None:
    """When a Prefect server is configured, it must answer; without one, flows start a temporary local server."""
    if url:
        check_http(
            url,
            "the Prefect API",
            "PREFECT_API_URL",
            "start the server (prefect server start), correct PREFECT_API_URL, or unset it to let the run start "
            "a temporary local server",
            "/health",
            timeout_s,
        )
