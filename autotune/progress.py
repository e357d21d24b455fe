"""A study's progress where it runs: a live block on a terminal, plain lines elsewhere.

On a terminal, ``autotune run`` keeps a small block at the bottom of the screen, redrawn a few
times a second: the study's progress (finished of total, pruned, failed), the best value so far,
the time spent and an estimate of the time left, and the running trial's epoch, its current
validation metric and its best (one line per worker with ``--workers N``). Finished trials print
above it, one line each. The block is drawn by rich's ``Live``, which also says whether the
output is a terminal at all.

Anywhere else (a log file, a pipe, CI) the output is plain lines with no control characters:
one per finished trial, plus a status line whenever a trial has run for
:data:`STATUS_SECONDS` without a line printed (``$AUTOTUNE_STATUS_SECONDS``; 0 turns it off).

``quiet`` prints nothing while the study runs (the command still prints its summary);
``verbose`` adds a line per epoch.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autotune.watch import Watcher

if TYPE_CHECKING:
    import optuna

    from autotune.spec import StudySpec

STATUS_ENV = "AUTOTUNE_STATUS_SECONDS"
# A status line after this long without a line, while a trial runs (plain output).
STATUS_SECONDS = 60.0
# How often the live block is redrawn, and how often local workers' trials are read.
REFRESH_PER_SECOND = 4
LIVE, PLAIN, QUIET = "live", "plain", "quiet"


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@dataclass
class Running:
    """A trial that trains now, as far as its epochs have told."""

    number: int
    started: float
    epochs: int = 0
    value: float | None = None
    best: float | None = None


class Board:
    """What the display shows: the study's tally, its best, and its running trials.

    Args:
        clock: Seconds, monotonic (a test may pass its own).
    """

    def __init__(
        self,
        spec: StudySpec,
        *,
        timeout: float | None,
        workers: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = spec.name
        self.n_trials = spec.n_trials
        self.metric = spec.metric
        self.maximize = spec.direction == "maximize"
        self.max_epochs = spec.max_epochs
        self.timeout = timeout
        self.workers = workers
        self.clock = clock
        self.start = clock()
        self.complete = self.pruned = self.failed = 0
        self.finished_at_start: int | None = None
        self.best: tuple[float, int] | None = None
        self.running: dict[str, Running] = {}

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

    def tally(self, complete: int, pruned: int, failed: int) -> None:
        self.complete, self.pruned, self.failed = complete, pruned, failed
        if self.finished_at_start is None:
            self.finished_at_start = self.finished

    def better(self, value: float, than: float | None) -> bool:
        return than is None or (value > than if self.maximize else value < than)

    def left(self) -> float | None:
        """Seconds until the study ends: the trials still to run at this run's pace so far,
        or the time left of ``timeout`` if that comes first; None while there is no telling."""
        elapsed = self.clock() - self.start
        done = self.finished - (self.finished_at_start or 0)
        estimate = None
        if done > 0:
            estimate = elapsed / done * max(0, self.n_trials - self.finished)
        if self.timeout is not None:
            budget = max(0.0, self.timeout - elapsed)
            estimate = budget if estimate is None else min(estimate, budget)
        return estimate

    def headline(self) -> str:
        """The study's line: progress, best, time spent and left."""
        parts = [f"{self.name}: {self.finished}/{self.n_trials} finished"]
        extra = [f"{n} {what}" for n, what in ((self.pruned, "pruned"), (self.failed, "failed"))]
        if self.pruned or self.failed:
            parts[0] += f" ({', '.join(e for e in extra if not e.startswith('0 '))})"
        if self.best is not None:
            parts.append(f"best {self.best[0]:.4f} (#{self.best[1]})")
        left = self.left()
        timing = f"{duration(self.clock() - self.start)} elapsed"
        if left is not None:
            timing += f", ~{duration(left)} left"
        parts.append(timing)
        return " | ".join(parts)

    def trial_text(self, running: Running) -> str:
        """A running trial: its epoch, its metric now and its best, and how long it has run."""
        text = f"trial {running.number}: "
        if running.epochs == 0:
            text += "first epoch"
        else:
            text += (
                f"epoch {running.epochs}/{self.max_epochs}, {self.metric} {_value(running.value)}"
                f" (best {_value(running.best)})"
            )
        return text + f", {duration(self.clock() - running.started)}"

    def lines(self) -> list[str]:
        """The live block: the headline, then one line per running trial (per worker)."""
        out = [self.headline()]
        running = dict(self.running)  # the display's thread reads as the trials change it
        if self.workers > 1:
            for index in range(self.workers):
                entry = running.get(str(index))
                out.append(f"  worker {index}: {self.trial_text(entry) if entry else 'waiting'}")
        else:
            out.extend(f"  {self.trial_text(r)}" for r in running.values())
        return out


def mode_for(quiet: bool, stream: Any = None) -> str:
    """``quiet``, ``live`` on a terminal that can redraw, else ``plain``."""
    if quiet:
        return QUIET
    from rich.console import Console

    console = Console(file=stream) if stream is not None else Console()
    return LIVE if console.is_terminal and not console.is_dumb_terminal else PLAIN


def status_seconds() -> float:
    """The plain output's status interval: ``$AUTOTUNE_STATUS_SECONDS``, else a minute."""
    raw = os.environ.get(STATUS_ENV, "")
    try:
        return float(raw) if raw else STATUS_SECONDS
    except ValueError:
        return STATUS_SECONDS


class Display(Watcher):
    """The study's progress on this process's output (see the module's docstring).

    Args:
        echo: Prints one line (``click.echo``).
        mode: :data:`LIVE`, :data:`PLAIN` or :data:`QUIET` (see :func:`mode_for`).
        verbose: A line per epoch too.
        every: Plain output: the status interval in seconds (0: none).
    """

    label = "the progress display"

    def __init__(
        self,
        echo: Callable[[str], None],
        *,
        mode: str = PLAIN,
        verbose: bool = False,
        every: float | None = None,
    ) -> None:
        self._echo = echo
        self.mode = mode
        self.verbose = verbose and mode != QUIET
        self.every = status_seconds() if every is None else every
        self.board: Board | None = None
        self._live: Any = None
        self._last_line = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._seen: dict[int, float] = {}

    def echo(self, line: str) -> None:
        """Prints a line: above the live block on a terminal; nothing when quiet."""
        if self.mode == QUIET:
            return
        with self._lock:
            self._last_line = time.monotonic()
            if self._live is not None:
                from rich.text import Text

                self._live.console.print(Text(line), soft_wrap=True)
            else:
                self._echo(line)

    def started(
        self, study: optuna.Study, spec: StudySpec, *, workers: int = 1, timeout: Any = None
    ) -> None:
        from autotune import study as study_module

        self.board = Board(spec, timeout=timeout, workers=workers)
        tally = study_module.counts(study)
        self.board.tally(tally.complete, tally.pruned, tally.failed)
        best = study_module.best_trial(study)
        if best is not None and best.value is not None:
            self.board.best = (best.value, best.number)
        if self.mode == LIVE:
            from rich.live import Live
            from rich.text import Text

            board = self.board
            self._live = Live(
                get_renderable=lambda: Text(
                    "\n".join(board.lines()), no_wrap=True, overflow="ellipsis"
                ),
                refresh_per_second=REFRESH_PER_SECOND,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        elif self.mode == PLAIN and self.every > 0 and workers == 1:
            # (local workers print their own status lines)
            self._ticker = threading.Thread(target=self._tick, name="autotune-status", daemon=True)
            self._ticker.start()

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        if self.board is not None:
            self.board.running[""] = Running(number, self.board.clock())

    def epoch_ended(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        board = self.board
        if board is None:
            return
        running = board.running.get("")
        if running is None or running.number != number:
            running = board.running[""] = Running(number, board.clock())
        value = metrics.get(board.metric)
        running.epochs = epoch + 1
        if value is not None and math.isfinite(value):
            running.value = value
            if board.better(value, running.best):
                running.best = value
        if self.verbose:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            self.echo(f"trial {number:>3}  epoch {epoch + 1:>3}/{board.max_epochs}  {shown}")

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        board = self.board
        if board is None:
            return
        state = trial.state.name
        board.tally(
            board.complete + (state == "COMPLETE"),
            board.pruned + (state == "PRUNED"),
            board.failed + (state == "FAIL"),
        )
        if state == "COMPLETE" and trial.value is not None:
            if board.best is None or board.better(trial.value, board.best[0]):
                board.best = (trial.value, trial.number)
        board.running.pop("", None)

    def poll(self, study: optuna.Study) -> None:
        """Reads the local workers' running trials and the study's tally from the storage."""
        import optuna

        from autotune import study as study_module

        board = self.board
        if board is None:
            return
        tally = study_module.counts(study)
        board.tally(tally.complete, tally.pruned, tally.failed)
        best = study_module.best_trial(study)
        if best is not None and best.value is not None:
            board.best = (best.value, best.number)
        running: dict[str, Running] = {}
        now = board.clock()
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            worker = str(trial.user_attrs.get("worker", trial.number))
            values = [v for _, v in sorted(trial.intermediate_values.items())]
            # Timed from when this process first saw it: no two machines' clocks are compared.
            self._seen.setdefault(trial.number, now)
            entry = Running(trial.number, self._seen[trial.number], len(values))
            finite = [v for v in values if math.isfinite(v)]
            if values:
                entry.value = values[-1]
            if finite:
                entry.best = max(finite) if board.maximize else min(finite)
            running[worker] = entry
        board.running = running

    def worker_output(self) -> Callable[[str], None] | None:
        """Local workers' lines come here to print above the live block."""
        return self.echo if self.mode == LIVE else None

    def worker_flags(self) -> list[str]:
        """How local workers print: as quietly and as verbosely as this run."""
        return ["--quiet"] if self.mode == QUIET else ["--verbose"] if self.verbose else []

    def _tick(self) -> None:
        """Plain output: a status line once a trial has run ``every`` seconds without a line."""
        while not self._stop.wait(min(1.0, self.every / 2)):
            board = self.board
            running = list(dict(board.running).values()) if board is not None else []
            if board is None or not running:
                continue
            now = time.monotonic()
            quiet_for = min(now - self._last_line, *(board.clock() - r.started for r in running))
            if quiet_for < self.every:
                continue
            trials = "; ".join(board.trial_text(r) for r in running)
            self.echo(f"{trials} | {board.headline()}")

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        if self._live is not None:
            self._live.stop()
            self._live = None
