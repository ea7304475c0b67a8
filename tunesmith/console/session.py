"""A command's console: the person sees Tunesmith's stages, progress bars, results and errors, while whatever
the libraries print (Trainer dicts, warnings, Prefect's own logs, other tools' progress bars, tracebacks) goes
to the run's log file, and to the terminal as well with --verbose.

The capture works on file descriptors 1 and 2, not only on sys.stdout: Prefect's temporary server runs as a
subprocess and C extensions write to the descriptors directly.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.table import Table

from tunesmith.console import progress
from tunesmith.console.live import LiveReporter
from tunesmith.console.progress import Fanout, LineReporter, Reporter, Stage
from tunesmith.errors import TunesmithError


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream (a test runner's capture)
        return None


class _Tee:
    """A pipe whose reader copies everything into the log and onto the terminal (--verbose)."""

    def __init__(self, log: TextIO, terminal: TextIO, lock: threading.Lock):
        self.read_fd, self.write_fd = os.pipe()
        self._thread = threading.Thread(target=self._copy, args=(log, terminal, lock), daemon=True)
        self._thread.start()

    def _copy(self, log: TextIO, terminal: TextIO, lock: threading.Lock) -> None:
        with os.fdopen(self.read_fd, "r", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                with lock:
                    log.write(line)
                terminal.write(line)
                terminal.flush()

    def close(self) -> None:
        os.close(self.write_fd)
        self._thread.join(timeout=5)


class ConsoleSession:
    """Where a command writes for its user, and where everything else goes."""

    def __init__(self, out: TextIO, err: TextIO, log: TextIO, log_path: Path, verbose: bool):
        self.log, self.log_path, self.verbose = log, log_path, verbose
        self.lock = threading.Lock()
        self.tty = out.isatty() and not verbose
        self.console = Console(file=out, highlight=False, force_terminal=self.tty, no_color=not self.tty)
        self.err_console = Console(file=err, highlight=False, force_terminal=err.isatty(), no_color=not err.isatty())
        # Without a terminal, the person reads the same plain lines the log gets.
        self.display: Reporter = LiveReporter(self.console) if self.tty else LineReporter(self.say)
        self.reporter = Fanout(self.display, LineReporter(self.log_line), _LogMover(self))

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def markdown(self, text: str) -> None:
        """Rendered on a terminal, as written elsewhere."""
        self.close()
        if self.tty:
            from rich.markdown import Markdown

            self.console.print(Markdown(text))
        else:
            self.say(text)

    def log_line(self, text: str) -> None:
        with self.lock:
            self.log.write(f"{time.strftime('%H:%M:%S')} tunesmith: {text}\n")
            self.log.flush()

    def close(self) -> None:
        if isinstance(self.display, LiveReporter):
            self.display.close()

    def table(self, title: str, rows: list[tuple[str, str]]) -> None:
        """A two-column result table: a rich table on a terminal, aligned lines elsewhere (and in the log)."""
        self.close()
        width = max((len(k) for k, _ in rows), default=0)
        for key, value in [("", title), *rows]:
            self.log_line(f"{key:<{width}}  {value}" if key else value)
        if self.tty:
            grid = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
            grid.add_column(style="bold")
            grid.add_column()
            for key, value in rows:
                grid.add_row(key, value)
            self.console.print()
            self.console.print(grid)
        else:
            self.say(f"\n{title}")
            for key, value in rows:
                self.say(f"  {key:<{width}}  {value}")

    def fail(self, error: BaseException) -> int:
        """Tell the person what went wrong in one paragraph; the traceback goes to the log. Returns the exit code."""
        self.close()
        with self.lock:
            traceback.print_exception(error, file=self.log)
            self.log.flush()
        stage = progress.last_failed()
        text, code = explain(error, stage, self.log_path)
        self.err_console.print(
            text, markup=False, highlight=False, soft_wrap=True, style="red" if self.err_console.is_terminal else None
        )
        return code


def explain(error: BaseException, stage: Stage | None, log_path: Path | None) -> tuple[str, int]:
    """(paragraph, exit code) for an error that ended a command."""
    where = f" in {stage.label}" if stage else ""
    log = f"\n  full log: {log_path}" if log_path else ""
    if isinstance(error, TunesmithError):
        first, *rest = error.problem.splitlines() or [""]
        lines = [first if error.titled else f"error{where}: {first}", *(f"  {line}" for line in rest)]
        if error.where:
            lines.append(f"  where: {error.where}")
        if error.fix:
            lines.append(f"  fix: {error.fix}")
        return "\n".join(lines) + log, error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return (
            f"interrupted{where}. Run the same command again to go on: curated data and baselines are reused and "
            f"training resumes from its last checkpoint.{log}",
            130,
        )
    message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    return (
        f"error{where}: {type(error).__name__}: {message}\n"
        f"  This is not a problem Tunesmith knows how to explain; the traceback is in the log. Please include it "
        f"when you report this.{log}",
        1,
    )


class _LogMover:
    """Moves the log into the run's folder (as run.log) once the run has one; open descriptors follow the file."""

    def __init__(self, session: ConsoleSession):
        self.session = session

    def run_folder(self, path: Path) -> None:
        target = path / "run.log"
        if self.session.log_path != target:
            os.replace(self.session.log_path, target)
            self.session.log_path = target

    def stage_started(self, stage) -> None: ...
    def stage_finished(self, stage, failed) -> None: ...
    def bar_started(self, bar) -> None: ...
    def bar_updated(self, bar) -> None: ...
    def bar_finished(self, bar) -> None: ...


@contextmanager
def console_session(log_path: Path, verbose: bool = False, keep_capture: bool = False) -> Iterator[ConsoleSession]:
    """Route the libraries' output to log_path (and the terminal with verbose) for the length of a command.

    keep_capture leaves descriptors 1 and 2 on the log afterwards: for a command whose process ends with the
    session, what the libraries print while it exits (Prefect stopping its temporary server) belongs there too."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    real = _fileno(sys.stdout) is not None and _fileno(sys.stderr) is not None
    if real:
        out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
        err = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    else:
        out, err = sys.stdout, sys.stderr
    log = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115 - kept open past the block
    session = ConsoleSession(out, err, log, log_path, verbose)
    tee = _Tee(log, err, session.lock) if verbose else None
    sink = tee.write_fd if tee else log.fileno()
    saved = sys.stdout, sys.stderr
    if real:
        saved_fds = os.dup(1), os.dup(2)
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        for stream in saved:
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(line_buffering=True)  # keep library lines in order with ours in the log
    else:
        sys.stdout = sys.stderr = os.fdopen(os.dup(sink), "w", buffering=1, encoding="utf-8", errors="replace")
    previous = progress.use(session.reporter)
    try:
        yield session
    finally:
        session.close()
        progress.use(previous)
        if real:
            if tee is not None or not keep_capture:
                for fd, saved_fd in zip((1, 2), saved_fds, strict=True):
                    os.dup2(saved_fd, fd)
            for saved_fd in saved_fds:
                os.close(saved_fd)
        else:
            # Not closed: a logging handler created meanwhile (Prefect's, when it was first imported here) may
            # still write to it, as Prefect does when it stops its temporary server at exit.
            sys.stdout.flush()
            sys.stdout, sys.stderr = saved
        if tee is not None:
            tee.close()
        out.flush()
        err.flush()
