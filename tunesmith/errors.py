"""Problems a user can cause and fix: each says what is wrong, where, and what to do about it.

The command line prints them as one short paragraph (no traceback) and exits 1 for data and run problems or 2
for usage and configuration problems; the traceback goes to the run's log only. Every field is passed to
Exception.__init__ so that the error survives pickling (Prefect stores a failed task's exception).
"""

from __future__ import annotations


class TunesmithError(Exception):
    """A problem worded for the person running Tunesmith."""

    exit_code = 1
    titled = False  # True when the problem's own first words say what kind of error it is

    def __init__(self, problem: str, where: str = "", fix: str = ""):
        super().__init__(problem, where, fix)
        self.problem, self.where, self.fix = problem, where, fix

    def __str__(self) -> str:
        return "\n".join(part for part in (self.problem, self.where and f"where: {self.where}",
                                           self.fix and f"fix: {self.fix}") if part)  # fmt: skip


class UsageError(TunesmithError):
    """The command line or the config asks for something that cannot be done."""

    exit_code = 2


class DataError(TunesmithError):
    """The input data as a whole cannot be used (missing, empty, unreadable)."""


class ModelUnavailable(UsageError):
    """The configured model cannot be found or loaded."""


class NotEnoughMemory(TunesmithError):
    """Training needs more memory than the machine has: estimated before training, or hit while training."""


class ServiceUnreachable(TunesmithError):
    """A service the run needs (MLflow tracking server, Prefect API) does not answer."""
