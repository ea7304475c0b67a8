"""The terminal display: a spinner on the running stage, a bar for long steps, one line per finished stage."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TaskID, TextColumn
from rich.text import Text

from tunesmith.console.progress import Bar, Stage, clock, duration


class _Count(ProgressColumn):
    def render(self, task) -> Text:
        if task.total is None:
            return Text("")
        unit = task.fields.get("unit", "")
        return Text(
            f"{int(task.completed)}/{int(task.total)}" + (f" {unit}" if unit else ""), style="progress.download"
        )


class _Time(ProgressColumn):
    """A bar's time left; a stage's time so far."""

    def render(self, task) -> Text:
        bar: Bar | None = task.fields.get("bar")
        if bar is None:
            return Text(clock(task.elapsed or 0), style="progress.elapsed")
        return Text(f"eta {clock(bar.eta_s)}" if bar.eta_s is not None else "", style="progress.remaining")


class LiveReporter:
    """Draws on a rich Console; finished stages stay as lines above the live area, which vanishes at close()."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=28), _Count(),
            TextColumn("{task.fields[info]}"), _Time(), console=console, transient=True, refresh_per_second=4,
            # Library output goes to the log (the session captures it); rich must not pull it onto the screen.
            redirect_stdout=False, redirect_stderr=False,
        )  # fmt: skip
        self._tasks: dict[int, TaskID] = {}
        self._started = False

    def _start(self) -> None:
        if not self._started:
            self.progress.start()
            self._started = True

    def close(self) -> None:
        if self._started:
            self.progress.stop()
            self._started = False

    def stage_started(self, stage: Stage) -> None:
        self._start()
        self._tasks[id(stage)] = self.progress.add_task(stage.heading, total=None, info="")

    def stage_finished(self, stage: Stage, failed: bool) -> None:
        task = self._tasks.pop(id(stage), None)
        if task is not None:
            self.progress.remove_task(task)
        if failed:
            self.console.print(f"[red]✗[/] {stage.heading}  [red]failed[/] after {duration(stage.seconds)}")
            return
        summary = f"  {stage.summary}" if stage.summary else ""
        self.console.print(f"[green]✓[/] {stage.heading}{summary}  [dim]({duration(stage.seconds)})[/]",
                           highlight=False)  # fmt: skip

    def bar_started(self, bar: Bar) -> None:
        self._start()
        self._tasks[id(bar)] = self.progress.add_task(
            f"  {bar.description}", total=bar.total, info="", unit=bar.unit, bar=bar
        )

    def bar_updated(self, bar: Bar) -> None:
        task = self._tasks.get(id(bar))
        if task is not None:
            info = ", ".join(f"{key} {value}" for key, value in bar.fields.items())
            self.progress.update(task, completed=bar.completed, info=info)

    def bar_finished(self, bar: Bar) -> None:
        task = self._tasks.pop(id(bar), None)
        if task is not None:
            self.progress.remove_task(task)

    def run_folder(self, path: Path) -> None:
        pass
