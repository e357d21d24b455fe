"""Long trials on real hardware: a time budget that holds within one epoch, GPU placement on a
machine without one, and a killed worker's trial that goes on from its last checkpoint."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from autotune import checkpoints, runner
from autotune import study as study_module
from autotune.cli import cli
from autotune.errors import Interrupted

from conftest import (
    EPOCHS,
    LOOP,
    nothing_stored,
    run_command,
    slow_study,
    tiny_raw,
    to_toml,
)

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


def epochs_logged(folder: Path) -> list[float]:
    log = folder / "epochs.log"
    return [float(line) for line in log.read_text().split()] if log.exists() else []


@pytest.mark.slow
def test_a_killed_workers_trial_goes_on_from_its_last_checkpoint_and_ends_where_one_run_would(
    workdir: Path, sqlite_url: str
):
    path = slow_study(workdir, seconds=0.5, checkpoint_every=1)
    command = run_command(path, sqlite_url)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    worker = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    storage = optuna.storages.RDBStorage(sqlite_url)
    deadline = time.monotonic() + 120
    saved = None
    while time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.1)
        try:
            trials = optuna.load_study(study_name="slow", storage=storage).trials
        except KeyError:
            continue
        saved = trials[0].user_attrs.get("checkpoint") if trials else None
        if saved and saved["epoch"] >= 3:
            worker.send_signal(signal.SIGKILL)
            break
    worker.wait()
    assert saved and saved["epoch"] >= 3, "no checkpoint at epoch 3 before the run ended"
    first_attempt = len(epochs_logged(workdir))

    # The next run fails the dead trial once its heartbeat is 4 s old, and retries it.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    study = study_module.load_study("slow", sqlite_url)
    dead, retry = study.trials
    assert dead.state == optuna.trial.TrialState.FAIL
    assert retry.state == optuna.trial.TrialState.COMPLETE
    epoch = dead.user_attrs["checkpoint"]["epoch"]  # its last checkpoint
    assert retry.user_attrs["resumed_from_trial"] == 0
    assert retry.user_attrs["resumed_from_epoch"] == epoch >= 3
    assert retry.user_attrs["seed"] == dead.user_attrs["seed"]
    assert sorted(retry.intermediate_values) == list(range(EPOCHS))  # one learning curve
    # Epochs trained across both attempts: at most max_epochs + checkpoint_every.
    assert first_attempt + (EPOCHS - epoch) == len(epochs_logged(workdir)) <= EPOCHS + 1
    # The retry went on writing the checkpoint it read, and removed it as it ended: the best
    # model is all the folder holds.
    kept = study.user_attrs[checkpoints.BEST_MODEL_ATTR]
    assert kept["trial"] == retry.number
    folder = checkpoints.default_folder(sqlite_url)
    assert [p.name for p in folder.iterdir()] == [kept["artifact"]]

    # The same study run once, uninterrupted, in another folder: the same curve and value.
    other = workdir / "uninterrupted"
    other.mkdir()
    once = subprocess.run(
        [*command[:-1], f"sqlite:///{other / 'once.db'}"], cwd=other, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert once.returncode == 0, once.stderr
    (whole,) = study_module.load_study("slow", f"sqlite:///{other / 'once.db'}").trials
    for step, value in whole.intermediate_values.items():
        assert retry.intermediate_values[step] == pytest.approx(value, abs=1e-6), step
    assert retry.value == pytest.approx(whole.value, abs=1e-6)


# A user's training loop with dropout that hands its model and optimizer to the reporter, and
# is stopped by Ctrl-C at the start of epoch 4 the first time it runs in its folder.
RESUMABLE_LOOP = "import os\n" + LOOP.replace(
    "(inputs)\n    model",
    "(inputs)\n    hidden = keras.layers.Dropout(0.2)(hidden)\n    model",
).replace(
    "    for epoch in range(data.epochs):\n",
    "    start = reporter.resume(model, optimizer)\n"
    "    for epoch in range(start, data.epochs):\n"
    '        if epoch == 4 and not os.path.exists("interrupted"):\n'
    '            open("interrupted", "w").close()\n'
    "            raise KeyboardInterrupt\n",
).replace("REPORT", "reporter.report(epoch, loss=loss, val_accuracy=accuracy.result())")


def loop_study_in(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "loop.py").write_text(RESUMABLE_LOOP)
    raw = tiny_raw("loop", n_trials=1, max_epochs=EPOCHS, pruner="none", checkpoint_every=1,
                   early_stopping={"patience": EPOCHS},
                   space={"batch_size": 64, "learning_rate": 0.05, "optimizer": "adam",
                          "decay": "cosine"})  # fmt: skip
    raw["train"] = "loop.py:train"
    (folder / "loop.toml").write_text(to_toml(raw))
    return folder / "loop.toml"


def test_a_training_loop_stopped_by_ctrl_c_goes_on_from_its_checkpoint_on_resume(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    url = f"sqlite:///{workdir / 'loop.db'}"
    path = loop_study_in(workdir / "stopped")
    monkeypatch.chdir(path.parent)
    with pytest.raises(Interrupted):
        runner.run(str(path), storage=url, echo=None)
    runner.run(str(path), storage=url, echo=None)
    stopped, resumed = study_module.load_study("loop", url).trials
    assert stopped.state == optuna.trial.TrialState.FAIL
    assert stopped.user_attrs["stop_reason"] == "interrupted"
    assert resumed.user_attrs["resumed_from_trial"] == 0
    assert resumed.user_attrs["resumed_from_epoch"] == 4
    assert sorted(resumed.intermediate_values) == list(range(EPOCHS))
    # The checkpoint it went on from is gone, and its own too: only the best model is left.
    folder = checkpoints.default_folder(url)
    assert [p.name for p in folder.iterdir()] == [
        study_module.load_study("loop", url).user_attrs[checkpoints.BEST_MODEL_ATTR]["artifact"]
    ]

    once_path = loop_study_in(workdir / "once")
    (once_path.parent / "interrupted").touch()  # never stopped
    monkeypatch.chdir(once_path.parent)
    once_url = f"sqlite:///{workdir / 'once.db'}"
    (whole,) = runner.run(str(once_path), storage=once_url, echo=None).trials
    for step, value in whole.intermediate_values.items():
        assert resumed.intermediate_values[step] == pytest.approx(value, abs=1e-6), step
    assert resumed.value == pytest.approx(whole.value, abs=1e-6)
