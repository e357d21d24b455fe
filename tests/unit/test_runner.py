"""The work loop, driven by stub objectives on Optuna's in-memory storage: the exact total,
surplus trials, failed trials and the failure streak, fatal errors, Ctrl-C and the timeout."""

from __future__ import annotations

import time

import optuna
import pytest

from autotune import runner
from autotune import study as study_module
from autotune.errors import (
    AutotuneError,
    Interrupted,
    SearchFailedError,
    TrialDiverged,
    TrialFailed,
    TrialOutOfMemory,
)

State = optuna.trial.TrialState


def new_study() -> optuna.Study:
    return optuna.create_study(
        study_name="stub", direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.trials]


def quadratic(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    return 1.0 - x * x


def test_the_loop_stops_at_the_study_total():
    study = new_study()
    progress = runner.work(study, lambda: quadratic, n_trials=5, echo=None)
    assert states(study) == ["COMPLETE"] * 5
    assert progress.finished == 5 and progress.failed == 0
    # resuming with a higher total runs only the difference
    runner.work(study, lambda: quadratic, n_trials=7, echo=None)
    assert states(study) == ["COMPLETE"] * 7


def test_a_finished_study_never_builds_its_objective():
    study = new_study()
    runner.work(study, lambda: quadratic, n_trials=2, echo=None)

    def unbuildable():
        raise AssertionError("the objective was built for a study that has its trials")

    assert runner.work(study, unbuildable, n_trials=2, echo=None).finished == 0


def test_a_trial_that_finds_the_total_taken_ends_as_surplus_and_never_counts():
    study = new_study()
    taken = [study.ask() for _ in range(2)]  # two trials of other workers, running
    guarded = runner._Guarded(quadratic, n_trials=2)
    late = study.ask()
    with pytest.raises(runner._Surplus):
        guarded(late)
    study.tell(late, state=State.FAIL)
    for trial in taken:
        study.tell(trial, 0.5)
    frozen = study.trials[late.number]
    assert frozen.user_attrs["stop_reason"] == study_module.SURPLUS and "x" not in frozen.params
    tally = study_module.counts(study)
    assert (tally.finished, tally.failed) == (2, 0)  # the surplus trial is no failure either


def test_a_failed_trial_is_recorded_with_its_reason_and_traceback_and_the_search_goes_on():
    def objective(trial: optuna.Trial) -> float:
        value = quadratic(trial)
        if trial.number in (1, 3):
            try:
                raise ValueError("units must be even")
            except ValueError as e:
                raise TrialFailed("model 'm.py:build' raised ValueError: units must be even") from e
        if trial.number == 4:
            raise TrialOutOfMemory("out of memory: ResourceExhaustedError: OOM when allocating")
        return value

    lines: list[str] = []
    study = new_study()
    progress = runner.work(study, lambda: objective, n_trials=4, echo=lines.append)
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE", "FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert (progress.finished, progress.failed) == (4, 3)
    failed = study.trials[1].user_attrs
    assert failed["stop_reason"] == "failed"
    assert failed["fail_reason"] == "model 'm.py:build' raised ValueError: units must be even"
    assert "ValueError: units must be even" in failed["traceback"]
    assert "in objective" in failed["traceback"]  # the user's own frame is kept
    assert study.trials[4].user_attrs["stop_reason"] == "oom"
    assert lines[1].endswith("(model 'm.py:build' raised ValueError: units must be even)")
    assert len(lines) == 7


def test_ten_failures_in_a_row_stop_the_search_with_the_last_reason():
    def objective(trial: optuna.Trial) -> float:
        quadratic(trial)
        if trial.number == 0:
            return 0.5
        raise TrialDiverged(f"loss became nan at epoch {trial.number}")

    study = new_study()
    with pytest.raises(
        SearchFailedError, match=r"^10 trials in a row failed, the last because it diverged\. "
    ):
        runner.work(study, lambda: objective, n_trials=50, echo=None)
    assert states(study) == ["COMPLETE"] + ["FAIL"] * 10


def test_a_success_resets_the_failure_streak():
    def objective(trial: optuna.Trial) -> float:
        quadratic(trial)
        if trial.number % 9 == 8:
            return 0.5
        raise TrialFailed("no luck")

    study = new_study()
    runner.work(study, lambda: objective, n_trials=3, echo=None)
    assert states(study).count("COMPLETE") == 3 and states(study).count("FAIL") == 24


def test_a_fatal_error_stops_the_search_at_once_with_its_cause():
    def objective(trial: optuna.Trial) -> float:
        if trial.number == 2:
            raise AutotuneError("Metric 'val_auc' is not in the logged metrics (loss). Set metric")
        return quadratic(trial)

    study = new_study()
    with pytest.raises(AutotuneError, match=r"^Metric 'val_auc' is not in the logged metrics"):
        runner.work(study, lambda: objective, n_trials=10, echo=None)
    assert states(study) == ["COMPLETE", "COMPLETE", "FAIL"]


def test_ctrl_c_fails_the_running_trial_and_queues_its_params_first():
    def objective(trial: optuna.Trial) -> float:
        value = quadratic(trial)
        if trial.number == 1:
            raise KeyboardInterrupt
        return value

    study = new_study()
    with pytest.raises(Interrupted) as info:
        runner.work(study, lambda: objective, n_trials=5, echo=None)
    assert not isinstance(info.value, AutotuneError)  # `except AutotuneError` never swallows it
    assert info.value.trial == 1
    assert states(study) == ["COMPLETE", "FAIL", "WAITING"]
    queued = study.trials[2]
    assert queued.system_attrs["fixed_params"] == study.trials[1].params
    assert queued.user_attrs["retry_of"] == 1
    # the resumed run trains the queued params first
    runner.work(study, lambda: quadratic, n_trials=5, echo=None)
    assert study.trials[2].params == study.trials[1].params
    assert study_module.counts(study).finished == 5


def test_no_trial_starts_after_the_timeout():
    def slow(trial: optuna.Trial) -> float:
        time.sleep(0.2)
        return quadratic(trial)

    study = new_study()
    runner.work(study, lambda: slow, n_trials=100, timeout=0.1, echo=None)
    assert states(study) == ["COMPLETE"]


def test_every_line_goes_to_echo_with_the_workers_prefix():
    lines: list[str] = []
    runner.work(new_study(), lambda: quadratic, n_trials=2, echo=lines.append, prefix="[worker 3] ")
    assert len(lines) == 2 and all(line.startswith("[worker 3] trial   ") for line in lines)
    assert "COMPLETE" in lines[0] and "best " in lines[0] and "x=" in lines[0]


def test_the_loop_leaves_optunas_log_level_and_warning_filters_as_it_found_them():
    import warnings

    optuna.logging.set_verbosity(optuna.logging.INFO)
    filters = list(warnings.filters)
    runner.work(new_study(), lambda: quadratic, n_trials=2, echo=None)
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
    assert warnings.filters == filters


def test_a_storage_that_stops_answering_stops_the_search_with_one_line(tmp_path, monkeypatch):
    import sqlite3

    from autotune.errors import StorageError
    from autotune.storage import open_storage

    monkeypatch.setattr(runner, "RECONNECT_WAITS", (0.01, 0.01))  # it never answers again
    path = tmp_path / "gone.db"
    study = optuna.create_study(study_name="stub", storage=open_storage(f"sqlite:///{path}"))

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 1:  # the database loses its tables under the running study
            with sqlite3.connect(path) as connection:
                connection.execute("DROP TABLE trial_values")
        return quadratic(trial)

    with pytest.raises(
        StorageError,
        match=rf"^The storage sqlite:///{path} stopped answering: no such table: trial_values\. Finished trials are kept",
    ):
        runner.work(study, lambda: objective, n_trials=5, echo=None)


def test_a_worker_whose_trial_another_worker_failed_says_so_and_goes_on():
    lines: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        value = quadratic(trial)
        if trial.number == 1:
            # another worker, seeing no heartbeat past the grace period, fails this trial
            trial.study.tell(trial.number, state=State.FAIL)
            trial.report(value, 0)  # this worker wakes up and writes late
        return value

    study = new_study()
    progress = runner.work(study, lambda: objective, n_trials=3, echo=lines.append)
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert progress.finished == 3
    assert lines[1].startswith("trial   1  dropped: another worker failed it while this one went")


def test_an_error_that_is_not_a_late_write_still_stops_the_search():
    def objective(trial: optuna.Trial) -> float:
        raise ValueError("a bug in autotune or in a stub")

    with pytest.raises(ValueError, match="a bug"):
        runner.work(new_study(), lambda: objective, n_trials=3, echo=None)


def test_the_budget_ends_a_running_trial_at_its_first_epoch_past_the_deadline():
    from autotune.spec import from_dict
    from autotune.trial import Budget, Reporter, optuna_pruning

    from conftest import tiny_raw

    spec = from_dict(tiny_raw(max_epochs=100, early_stopping={"patience": 100}))
    budget = Budget(0.5)
    epoch_ends: list[float] = []
    reporters: list[Reporter] = []

    def objective(trial: optuna.Trial) -> float:
        reporter = Reporter(spec, prune=optuna_pruning(trial), budget=budget)
        reporters.append(reporter)
        for epoch in range(100):
            time.sleep(0.1)
            epoch_ends.append(time.monotonic())
            reporter.report(epoch, val_accuracy=0.5 + epoch / 1000)
        return 1.0

    study = new_study()
    runner.work(study, lambda: objective, n_trials=5, echo=None, budget=budget)
    assert budget.deadline is not None
    (trial,) = study.trials  # no second trial starts once the budget is spent
    assert trial.state == State.PRUNED and reporters[0].out_of_time
    # It ended at the first epoch that ended past the deadline: within one epoch of it (on a
    # slow machine the first epoch may end past it already).
    assert budget.deadline <= epoch_ends[-1]
    assert len(epoch_ends) == 1 or epoch_ends[-2] < budget.deadline
    assert len(trial.intermediate_values) == len(epoch_ends)  # every epoch's value is kept
