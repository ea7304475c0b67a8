"""Processes Tunesmith starts (a distributed training job, a vLLM server) that end when the process that started
them ends, and can be stopped as one.

torchrun starts each rank in a session of its own, so stopping the launcher's process group does not reach the
ranks; and a launcher killed outright (SIGKILL, an out-of-memory kill) cannot pass anything on. The kernel can:
a process that asks for a parent-death signal receives it when its parent exits.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys

PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 15.0
# Loaded at import, not after fork: loading a library in the forked child of a threaded process can deadlock.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
AVAILABLE = _LIBC is not None


def end_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel for `sig` when this process's parent exits; a no-op where the kernel cannot."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, sig)


def orphan_check(parent_pid: int) -> None:
    """The parent may have died before end_with_parent() was asked for: then leave now."""
    if os.getppid() != parent_pid:
        os._exit(1)


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the job's whole process group, then SIGKILL to what is left after a grace period."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
