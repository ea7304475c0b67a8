"""What a run tells the person who started it: numbered stages, progress bars and each stage's result.

Stage code reports through the functions here and never prints. What the person sees depends on the reporter
installed: the command line installs a live display on a terminal and plain lines elsewhere; the default
writes plain lines to the `tunesmith` logger, which Prefect workers forward to the flow run's logs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tunesmith.stages import label


@dataclass
class Stage:
    name: str
    label: str  # what is shown, e.g. "training lora"
    index: int | None  # position in the flow's plan (1-based), None when the stage is not in it
    total: int | None
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    summary: str = ""

    @property
    def heading(self) -> str:
        return (f"[{self.index}/{self.total}] " if self.index else "") + self.label


@dataclass
class Bar:
    description: str
    total: int | None
    unit: str = ""
    completed: int = 0
    fields: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    baseline: int = 0  # where a resumed piece of work started: the rate (and so the ETA) counts from here

    def advance(self, n: int = 1, **fields: object) -> None:
        advance(n, bar=self, **fields)

    def resume_at(self, completed: int) -> None:
        self.completed = self.baseline = completed
        self.started = time.monotonic()

    @property
    def eta_s(self) -> float | None:
        done = self.completed - self.baseline
        if not self.total or done <= 0:
            return None
        return (time.monotonic() - self.started) / done * (self.total - self.completed)

    def line(self) -> str:
        """'step 20/40, loss 1.23, 180 tokens/s, eta 0:45'"""
        count = f"{self.completed}/{self.total}" if self.total else str(self.completed)
        parts = [f"{self.description} {count}" + (f" {self.unit}" if self.unit else "")]
        parts += [f"{key} {value}" for key, value in self.fields.items()]
        if self.total and self.completed < self.total and self.eta_s is not None:
            parts.append(f"eta {clock(self.eta_s)}")
        return ", ".join(parts)


class Reporter(Protocol):
    def stage_started(self, stage: Stage) -> None: ...
    def stage_finished(self, stage: Stage, failed: bool) -> None: ...
    def bar_started(self, bar: Bar) -> None: ...
    def bar_updated(self, bar: Bar) -> None: ...
    def bar_finished(self, bar: Bar) -> None: ...
    def run_folder(self, path: Path) -> None: ...


def clock(seconds: float) -> str:
    """0:45, 12:03, 1:02:03"""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def duration(seconds: float) -> str:
    """0.4 s, 12 s, 2m 10s, 1h 02m"""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


class LineReporter:
    """Plain lines for logs, CI and pipes: one line when a stage starts and one when it ends, and a bar's
    state at every tenth of its total (at most one line per `min_interval_s`, and always the last)."""

    def __init__(self, write: Callable[[str], None], min_interval_s: float = 5.0):
        self.write = write
        self.min_interval_s = min_interval_s
        self._last: dict[int, tuple[int, float]] = {}  # bar id -> (tenths reported, when)
        self._indent = "       "

    def stage_started(self, stage: Stage) -> None:
        self._indent = " " * (len(stage.heading) - len(stage.label)) or "  "
        self.write(stage.heading)

    def stage_finished(self, stage: Stage, failed: bool) -> None:
        if failed:
            self.write(f"{self._indent}failed after {duration(stage.seconds)}")
            return
        self.write(f"{self._indent}done in {duration(stage.seconds)}" + (f": {stage.summary}" if stage.summary else ""))

    def bar_started(self, bar: Bar) -> None:
        self._last[id(bar)] = (0, time.monotonic())

    def bar_updated(self, bar: Bar) -> None:
        tenths = 10 * bar.completed // bar.total if bar.total else 0
        reported, when = self._last.get(id(bar), (0, 0.0))
        if tenths > reported and tenths < 10 and time.monotonic() - when >= self.min_interval_s:
            self._last[id(bar)] = (tenths, time.monotonic())
            self.write(self._indent + bar.line())

    def bar_finished(self, bar: Bar) -> None:
        self._last.pop(id(bar), None)
        self.write(f"{self._indent}{bar.line()} in {duration(time.monotonic() - bar.started)}")

    def run_folder(self, path: Path) -> None:
        pass


def _log_line(text: str) -> None:
    logging.getLogger("tunesmith").info(text)


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reporter: Reporter = LineReporter(_log_line)
        self.plan: list[str] = []
        self.stages: list[Stage] = []
        self.bars: list[Bar] = []
        self.last_failed: Stage | None = None


_state = _State()


def use(reporter: Reporter) -> Reporter:
    """Install a reporter (a new command's display); returns the one it replaces."""
    with _state.lock:
        previous, _state.reporter = _state.reporter, reporter
        _state.last_failed = None
    return previous


def plan(stages: list[str]) -> None:
    """The stages a flow will go through, in order: what `[4/8]` counts."""
    with _state.lock:
        _state.plan = list(stages)


@contextmanager
def stage(name: str, detail: str = "") -> Iterator[Stage]:
    """Report the stage's start, then its end with the summary given to done() (or that it failed)."""
    with _state.lock:
        index = _state.plan.index(name) + 1 if name in _state.plan else None
        current = Stage(name, " ".join(p for p in (label(name), detail) if p), index,
                        len(_state.plan) if index else None)  # fmt: skip
        _state.stages.append(current)
        _state.reporter.stage_started(current)
    failed = True
    try:
        yield current
        failed = False
    finally:
        with _state.lock:
            current.seconds = time.monotonic() - current.started
            _state.stages.remove(current)
            if failed:
                _state.last_failed = current
            _state.reporter.stage_finished(current, failed)


def done(summary: str) -> None:
    """The one-line result of the innermost running stage, shown when it ends."""
    with _state.lock:
        if _state.stages:
            _state.stages[-1].summary = summary


@contextmanager
def bar(description: str, total: int | None, unit: str = "") -> Iterator[Bar]:
    """A progress bar; advance() moves the innermost open one, so code deep in a stage needs no handle."""
    current = Bar(description, total, unit)
    with _state.lock:
        _state.bars.append(current)
        _state.reporter.bar_started(current)
    try:
        yield current
    finally:
        with _state.lock:
            _state.bars.remove(current)
            _state.reporter.bar_finished(current)


def advance(n: int = 1, bar: Bar | None = None, **fields: object) -> None:
    """Move a bar (the innermost open one by default) n steps on; fields such as loss=1.2 are shown beside it."""
    with _state.lock:
        target = bar or (_state.bars[-1] if _state.bars else None)
        if target is None:
            return
        target.completed += n
        target.fields.update({key: str(value) for key, value in fields.items()})
        _state.reporter.bar_updated(target)


def run_folder(path: Path) -> None:
    """Tell the reporter where this run's outputs go (the command line moves its log there)."""
    with _state.lock:
        _state.reporter.run_folder(Path(path))


def last_failed() -> Stage | None:
    """The stage that most recently ended in an exception: where an error the command reports happened."""
    with _state.lock:
        return _state.last_failed


class Fanout:
    """Several reporters as one: the terminal display and the lines written to the run's log."""

    def __init__(self, *reporters: Reporter):
        self.reporters = reporters

    def _each(self, method: str, *args) -> None:
        for reporter in self.reporters:
            getattr(reporter, method)(*args)

    def stage_started(self, stage: Stage) -> None:
        self._each("stage_started", stage)

    def stage_finished(self, stage: Stage, failed: bool) -> None:
        self._each("stage_finished", stage, failed)

    def bar_started(self, bar: Bar) -> None:
        self._each("bar_started", bar)

    def bar_updated(self, bar: Bar) -> None:
        self._each("bar_updated", bar)

    def bar_finished(self, bar: Bar) -> None:
        self._each("bar_finished", bar)

    def run_folder(self, path: Path) -> None:
        self._each("run_folder", path)
