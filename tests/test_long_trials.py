"""Long trials on real hardware: a time budget that holds within one epoch."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
from click.testing import CliRunner

from autotune import study as study_module
from autotune.cli import cli

from conftest import EPOCHS, nothing_stored, slow_study

EPOCH_SECONDS = 1.0
TIMEOUT = 2.5


def test_the_timeout_ends_the_running_trial_within_one_epoch_and_keeps_it_as_pruned(
    workdir: Path, sqlite_url: str
):
    path = slow_study(workdir, seconds=EPOCH_SECONDS)
    result = CliRunner().invoke(
        cli, ["run", "--study", str(path), "--storage", sqlite_url, "--timeout", str(TIMEOUT)]
    )
    assert result.exit_code == 0, result.output
    study = study_module.load_study("slow", sqlite_url)
    (trial,) = study.trials
    attrs = trial.user_attrs
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert attrs["stop_reason"] == "budget"
    # The budget starts as the work loop does, a moment before the trial is created: the trial
    # ended at the first epoch that ended past the deadline, so within one epoch of it. (The
    # deadline is taken from the trial's start, which comes up to a moment later.)
    deadline = trial.datetime_start.timestamp() + TIMEOUT
    ends = [float(line) for line in (workdir / "epochs.log").read_text().split()]
    assert len(ends) == attrs["epochs"] and 1 <= attrs["epochs"] < EPOCHS
    assert ends[-1] >= deadline - 0.5, (ends, deadline)
    assert len(ends) == 1 or ends[-2] < deadline + 0.1, (ends, deadline)
    assert len(trial.intermediate_values) == attrs["epochs"]  # its curve is kept
    best = max(trial.intermediate_values.values())
    assert attrs["best_value"] == best
    assert re.search(
        rf"The time budget \({TIMEOUT:g} s\) ended this run\. It stopped trial 0 after epoch"
        rf" {attrs['epochs']}, kept as pruned \(best val_accuracy {best:.4f} at epoch"
        rf" {attrs['best_epoch']}\)\.$",
        result.output,
        re.M,
    ), result.output
    # It counts: the study's one trial is finished, and a second run has nothing left to do.
    assert study_module.counts(study).finished == 1


def test_gpus_auto_on_a_machine_without_one_trains_on_the_cpu_and_says_so(
    write_study, sqlite_url: str
):
    path = write_study(n_trials=2, max_epochs=1)
    result = CliRunner().invoke(
        cli, ["run", "--study", str(path), "--storage", sqlite_url, "--gpus", "auto"]
    )
    assert result.exit_code == 0, result.output
    assert "No GPU found: training on the CPU." in result.output.splitlines()
    study = study_module.load_study("tiny", sqlite_url)
    assert [t.user_attrs["device"] for t in study.trials] == ["CPU", "CPU"]


def test_a_gpu_that_is_not_there_is_one_line_and_nothing_is_stored(write_study, sqlite_url: str):
    path = write_study(n_trials=2, max_epochs=1)
    result = CliRunner().invoke(
        cli,
        ["run", "--study", str(path), "--storage", sqlite_url, "--gpus", "0,1", "--workers", "2"],
    )
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: --gpus 0,1: GPU 0, 1 is not there; TensorFlow sees no GPU on this machine. Use"
        " --gpus auto (the GPUs there are, else the CPU) or --gpus none."
    )
    assert nothing_stored(sqlite_url)
