"""The progress display and the watchers, without TensorFlow: the board's figures, the status
line of plain output, local workers read from the storage, and watchers that fail."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import optuna
import pytest

from autotune import progress, trackers
from autotune import spec as spec_module
from autotune.errors import AutotuneError, StudySpecError
from autotune.progress import Board, Display
from autotune.watch import Watcher, Watchers

from conftest import tiny_raw

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Clock:
    """Seconds that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spec(**overrides):
    return spec_module.from_dict(tiny_raw(n_trials=10, max_epochs=20, **overrides))


def test_the_headline_says_progress_best_and_time_left_at_this_runs_pace():
    clock = Clock()
    board = Board(spec(), timeout=None, clock=clock)
    board.tally(complete=2, pruned=0, failed=0)  # finished before this run
    assert board.left() is None  # nothing finished in this run yet: no telling
    clock.now += 60
    board.tally(complete=4, pruned=1, failed=1)  # 3 finished in 60 s, 5 to go
    board.best = (0.9712, 8)
    assert board.left() == pytest.approx(100.0)
    assert board.headline() == (
        "tiny: 5/10 finished (1 pruned, 1 failed) | best 0.9712 (#8) | 1m00s elapsed, ~1m40s left"
    )


def test_a_timeout_caps_the_estimate():
    clock = Clock()
    board = Board(spec(), timeout=90, clock=clock)
    board.tally(0, 0, 0)
    assert board.left() == pytest.approx(90.0)  # only the budget to go by
    clock.now += 60
    board.tally(1, 0, 0)  # 9 trials to go at 60 s each, but 30 s of budget left
    assert board.left() == pytest.approx(30.0)


def test_a_running_trial_shows_its_epoch_its_metric_now_and_its_best():
    clock = Clock()
    display = Display(lambda line: None, mode=progress.PLAIN, every=0)
    study = optuna.create_study(direction="maximize")
    display.started(study, spec())
    display.board.clock = clock
    display.trial_started(3, {"units": 8})
    display.board.running[""].started = clock.now
    for epoch, value in enumerate([0.80, 0.91, 0.88]):
        display.epoch_ended(3, epoch, {"loss": 0.3, "val_accuracy": value})
    clock.now += 75
    assert display.board.lines()[1] == (
        "  trial 3: epoch 3/20, val_accuracy 0.8800 (best 0.9100), 1m15s"
    )


def test_verbose_adds_a_line_per_epoch_and_quiet_prints_nothing():
    lines: list[str] = []
    display = Display(lines.append, mode=progress.PLAIN, verbose=True, every=0)
    display.started(optuna.create_study(direction="maximize"), spec())
    display.trial_started(0, {})
    display.epoch_ended(0, 0, {"loss": 0.5, "val_accuracy": 0.75})
    assert lines == ["trial   0  epoch   1/20  loss 0.5000  val_accuracy 0.7500"]

    quiet: list[str] = []
    display = Display(quiet.append, mode=progress.QUIET, verbose=True, every=0)
    display.started(optuna.create_study(direction="maximize"), spec())
    display.echo("trial   0  COMPLETE ...")
    display.epoch_ended(0, 0, {"loss": 0.5, "val_accuracy": 0.75})
    assert quiet == []
    assert display.worker_flags() == ["--quiet"]


def test_finished_trials_update_the_tally_and_the_best_without_reading_the_storage():
    study = optuna.create_study(direction="maximize")
    display = Display(lambda line: None, mode=progress.PLAIN, every=0)
    display.started(study, spec())
    for value, state in ((0.7, "COMPLETE"), (0.9, "COMPLETE"), (0.95, "PRUNED"), (None, "FAIL")):
        trial = study.ask()
        study.tell(trial, value if state == "COMPLETE" else None,
                   state=getattr(optuna.trial.TrialState, state))  # fmt: skip
        display.trial_finished(study, study.trials[-1])
    board = display.board
    assert (board.complete, board.pruned, board.failed) == (2, 1, 1)
    assert board.best == (0.9, 1)  # a pruned trial's value is not a result


def test_plain_output_says_where_a_long_trial_is_once_it_has_been_quiet_long_enough():
    lines: list[str] = []
    display = Display(lines.append, mode=progress.PLAIN, every=0.4)
    display.started(optuna.create_study(direction="maximize"), spec())
    try:
        display.trial_started(7, {})
        display.epoch_ended(7, 0, {"val_accuracy": 0.5})
        time.sleep(0.2)
        assert lines == []  # not yet: quiet for less than 0.4 s
        time.sleep(0.8)
        assert lines, "no status line after the trial ran quietly for 0.4 s"
    finally:
        display.close()
    assert re.fullmatch(
        r"trial 7: epoch 1/20, val_accuracy 0\.5000 \(best 0\.5000\), \ds \| tiny: 0/10 finished"
        r" \| \ds elapsed",
        lines[0],
    ), lines[0]
    assert not any(CONTROL.search(line) for line in lines)


def test_the_waiting_process_reads_each_workers_running_trial_from_the_storage():
    study = optuna.create_study(direction="maximize")
    display = Display(lambda line: None, mode=progress.PLAIN, every=0)
    display.started(study, spec(), workers=3)
    done = study.ask()
    study.tell(done, 0.93)
    first, second = study.ask(), study.ask()
    first.set_user_attr("worker", 0)
    second.set_user_attr("worker", 2)
    for epoch, value in enumerate([0.6, 0.8, 0.7]):
        first.report(value, epoch)
    display.poll(study)
    lines = display.board.lines()
    assert lines[0].startswith("tiny: 1/10 finished | best 0.9300 (#0) |")
    assert lines[1].startswith("  worker 0: trial 1: epoch 3/20, val_accuracy 0.7000 (best 0.8000)")
    assert lines[2] == "  worker 1: waiting"
    assert lines[3].startswith("  worker 2: trial 2: first epoch")


def test_a_terminal_gets_the_live_block_and_a_file_plain_lines(tmp_path: Path):
    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=False) as terminal:
            assert progress.mode_for(False, terminal) == progress.LIVE
    finally:
        os.close(master)
        os.close(slave)
    with open(tmp_path / "log.txt", "w") as log:
        assert progress.mode_for(False, log) == progress.PLAIN
        assert progress.mode_for(True, log) == progress.QUIET


class Broken(Watcher):
    label = "the broken tracker"

    def epoch_ended(self, number, epoch, metrics):
        raise ConnectionError("tracking server gone")


class Counting(Watcher):
    def __init__(self) -> None:
        self.epochs = 0

    def epoch_ended(self, number, epoch, metrics):
        self.epochs += 1


def test_a_watcher_that_fails_is_said_once_and_dropped_and_the_others_go_on():
    warnings: list[str] = []
    counting = Counting()
    watchers = Watchers([Broken(), counting], warn=warnings.append)
    for epoch in range(3):
        watchers.epoch_ended(0, epoch, {"val_accuracy": 0.5})
    assert counting.epochs == 3
    assert warnings == [
        "the broken tracker stopped: tracking server gone (ConnectionError); the study goes on"
        " without it."
    ]


def test_trackers_are_study_settings_outside_the_fingerprint():
    plain = spec()
    tracked = spec(tensorboard=True, mlflow="sqlite:///runs.db")
    assert tracked.tensorboard is True and tracked.mlflow == "sqlite:///runs.db"
    assert tracked.fingerprint() == plain.fingerprint()
    assert spec_module.from_dict(tracked.to_dict()).mlflow == "sqlite:///runs.db"
    assert "tensorboard" not in plain.to_dict()
    with pytest.raises(StudySpecError, match="'mlflow' must be true, or an MLflow tracking URI"):
        spec(mlflow=3)
    with pytest.raises(StudySpecError, match="'tensorboard' must be true, or the folder"):
        spec(tensorboard="")


def test_a_tracker_without_its_package_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(trackers._EXTRAS, "mlflow", ("mlflow_not_installed_here", "mlflow"))
    with pytest.raises(AutotuneError) as caught:
        trackers.check(spec(mlflow=True))
    assert str(caught.value) == (
        "<spec>: mlflow is on, but mlflow_not_installed_here is not installed. Install it with:"
        " pip install 'autotune[mlflow]'"
    )


def test_an_mlflow_file_store_is_refused_before_anything_is_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AutotuneError, match="mlflow './mlruns' is a file store, which MLflow 3"):
        trackers.check(spec(mlflow="./mlruns"))
    trackers.check(spec(mlflow="sqlite:///runs.db"))  # a database: fine
    assert list(tmp_path.iterdir()) == []
