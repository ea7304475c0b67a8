"""Processes of a training job that end when the process that started them ends.

torchrun starts each rank in a session of its own, so stopping the launcher's process group does not reach the
ranks; and a launcher killed outright (SIGKILL, an out-of-memory kill) cannot pass anything on. The kernel can:
a process that asks for a parent-death signal receives it when its parent exits.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
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
