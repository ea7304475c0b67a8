"""Rank 0's progress as lines on its standard output, and the launcher's reading of them back into a bar.

The launcher reads the job's merged output line by line: lines with the prefix carry the progress bar's state
as JSON; every other line is the job's own output (warnings, errors), logged and kept for a failure message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from tunesmith.console.progress import Bar, Stage

PREFIX = "@tunesmith-progress "


class EventReporter:
    """A progress reporter that writes bar updates as prefixed JSON lines."""

    def __init__(self, stream: TextIO = sys.stdout):
        self.stream = stream

    def _emit(self, kind: str, bar: Bar) -> None:
        event = {"event": kind, "completed": bar.completed, "total": bar.total, "fields": bar.fields}
        self.stream.write(PREFIX + json.dumps(event) + "\n")
        self.stream.flush()

    def stage_started(self, stage: Stage) -> None:
        pass

    def stage_finished(self, stage: Stage, failed: bool) -> None:
        pass

    def bar_started(self, bar: Bar) -> None:
        self._emit("started", bar)

    def bar_updated(self, bar: Bar) -> None:
        self._emit("updated", bar)

    def bar_finished(self, bar: Bar) -> None:
        self._emit("finished", bar)

    def run_folder(self, path: Path) -> None:
        pass


class Silent(EventReporter):
    """Every rank but 0: the same training, nothing to show."""

    def _emit(self, kind: str, bar: Bar) -> None:
        pass


def parse(line: str) -> dict[str, Any] | None:
    """The event a line carries, or None for the job's own output."""
    if not line.startswith(PREFIX):
        return None
    try:
        return json.loads(line[len(PREFIX) :])
    except json.JSONDecodeError:
        return None
