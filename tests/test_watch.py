"""Watching a study: the live block in a real pseudo-terminal, plain lines in a file, and each
trial in TensorBoard's HParams data and in MLflow's nested runs, read back with their own
readers."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import optuna
import pyte
import pytest
from click.testing import CliRunner

from autotune import runner, trackers
from autotune import study as study_module
from autotune.cli import cli

from conftest import EPOCHS, run_command, slow_study, tiny_raw, to_toml

COLUMNS, ROWS = 120, 40


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update({"TERM": "xterm-256color", "TF_CPP_MIN_LOG_LEVEL": "2", **extra})
    return env


@pytest.mark.slow
def test_a_terminal_shows_the_running_trials_epochs_advancing(workdir: Path, sqlite_url: str):
    path = slow_study(workdir, seconds=1.0)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    process = subprocess.Popen(run_command(path, sqlite_url), stdin=slave, stdout=slave,
                               stderr=slave, env=environment(), close_fds=True)  # fmt: skip
    os.close(slave)
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    epochs_seen: list[int] = []
    headlines: list[str] = []
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                stream.feed(chunk)
            shown = "\n".join(screen.display)
            found = re.search(rf"trial 0: epoch (\d+)/{EPOCHS}, val_accuracy", shown)
            if found and (not epochs_seen or int(found[1]) != epochs_seen[-1]):
                epochs_seen.append(int(found[1]))
            headline = re.search(r"slow: \d+/1 finished[^\n]*", shown)
            if headline:
                headlines.append(headline[0].strip())
            if process.poll() is not None and not ready:
                break
    finally:
        process.kill() if process.poll() is None else None
        process.wait()
        os.close(master)
    final = "\n".join(line.rstrip() for line in screen.display)
    assert process.returncode == 0, final
    # The epochs advanced on the screen while the trial trained, in order.
    assert len(epochs_seen) >= 3, (epochs_seen, final)
    assert epochs_seen == sorted(epochs_seen)
    assert headlines and headlines[0].startswith("slow: 0/1 finished")
    assert "elapsed" in headlines[0]
    # At the end the block is gone: the finished trial's line and the summary are left.
    assert re.search(r"trial +0 +COMPLETE", final)
    assert "Study 'slow': 1 of 1 trials finished" in final
    assert not re.search(rf"epoch \d+/{EPOCHS}, val_accuracy", final)


@pytest.mark.slow
def test_the_same_run_into_a_file_is_plain_lines_with_a_status_for_a_long_trial(
    workdir: Path, sqlite_url: str
):
    path = slow_study(workdir, seconds=0.7)
    with open(workdir / "log.txt", "wb") as log:
        subprocess.run(run_command(path, sqlite_url), stdout=log, stderr=subprocess.STDOUT,
                       env=environment(AUTOTUNE_STATUS_SECONDS="2"), check=True)  # fmt: skip
    text = (workdir / "log.txt").read_text()
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text), repr(text)
    lines = text.splitlines()
    statuses = [line for line in lines if line.startswith("trial 0: epoch ")]
    assert statuses, text
    assert re.match(rf"trial 0: epoch \d/{EPOCHS}, val_accuracy 0\.\d{{4}} \(best 0\.\d{{4}}\)",
                    statuses[0])  # fmt: skip
    assert "| slow: 0/1 finished |" in statuses[0]
    assert sum(1 for line in lines if re.match(r"trial +0 +COMPLETE", line)) == 1


def test_quiet_prints_only_the_summary_and_verbose_a_line_per_epoch(write_study, sqlite_url):
    path = write_study(n_trials=2, max_epochs=2, early_stopping={"patience": 5}, pruner="none")
    quiet = CliRunner().invoke(cli, ["run", "--study", str(path), "--storage", sqlite_url, "-q"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.output.splitlines()[0] == "Study 'tiny': 2 of 2 trials finished (2 complete)."
    more = CliRunner().invoke(
        cli, ["run", "--study", str(path), "--storage", sqlite_url, "--n-trials", "3", "-v"]
    )
    assert more.exit_code == 0, more.output
    epochs = [line for line in more.output.splitlines() if re.match(r"trial +2 +epoch", line)]
    assert [line.split()[3] for line in epochs] == ["1/2", "2/2"]
    assert "val_accuracy" in epochs[0]


def five_trials(workdir: Path, url: str, **trackers_on) -> optuna.Study:
    raw = tiny_raw(n_trials=5, max_epochs=3, pruner="none", early_stopping={"patience": 5},
                   **trackers_on)  # fmt: skip
    (workdir / "tiny.toml").write_text(to_toml(raw))
    return runner.run(str(workdir / "tiny.toml"), storage=url, echo=None)


def test_tensorboard_hparams_list_every_trial_with_its_params_and_metrics(
    workdir: Path, sqlite_url: str
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util import tensor_util

    study = five_trials(workdir, sqlite_url, tensorboard="logs")
    root = workdir / "logs" / "tiny"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [f"trial-{n}" for n in range(5)]
    experiment = EventAccumulator(str(root))
    experiment.Reload()
    config = metadata.parse_experiment_plugin_data(
        experiment.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG]
    )
    assert {h.name for h in config.hparam_infos} >= {"units", "learning_rate"}
    assert "val_accuracy" in {m.name.tag for m in config.metric_infos}
    for trial in study.trials:
        events = EventAccumulator(str(root / f"trial-{trial.number}"))
        events.Reload()
        start = metadata.parse_session_start_info_plugin_data(
            events.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
        )
        assert start.hparams["units"].number_value == trial.params["units"]
        assert start.hparams["learning_rate"].number_value == pytest.approx(
            trial.params["learning_rate"]
        )
        history = events.Tensors("val_accuracy")
        assert [e.step for e in history] == list(range(trial.user_attrs["epochs"]))
        assert max(
            float(tensor_util.make_ndarray(e.tensor_proto)) for e in history
        ) == pytest.approx(trial.value, abs=1e-6)


def test_mlflow_holds_the_study_as_one_run_and_each_trial_nested_in_it(
    workdir: Path, sqlite_url: str
):
    from mlflow import MlflowClient

    study = five_trials(workdir, sqlite_url, mlflow=True)
    stored = study.user_attrs[trackers.MLFLOW_ATTR]
    assert stored["uri"] == f"sqlite:///{workdir / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=stored["uri"])
    runs = client.search_runs([stored["experiment"]])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    nested = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert [p.info.run_id for p in parents] == [stored["run"]]
    assert parents[0].info.status == "FINISHED"
    best = study_module.best_trial(study)
    assert parents[0].data.metrics["best_val_accuracy"] == pytest.approx(best.value)
    assert sorted(nested) == [f"trial-{n}" for n in range(5)]
    for trial in study.trials:
        run = nested[f"trial-{trial.number}"]
        assert run.data.tags["mlflow.parentRunId"] == stored["run"]
        assert run.data.tags["state"] == "COMPLETE"
        assert run.data.tags["stop_reason"] == trial.user_attrs["stop_reason"]
        assert run.data.params == {k: str(v) for k, v in trial.params.items()}
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == list(range(trial.user_attrs["epochs"]))
        assert run.data.metrics["value"] == pytest.approx(trial.value)

    exported = CliRunner().invoke(
        cli, ["best", "--study", "tiny", "--storage", sqlite_url, "--export", "model"]
    )
    assert exported.exit_code == 0, exported.output
    assert f"Added to MLflow run {stored['run']}" in exported.output
    artifacts = {a.path for a in client.list_artifacts(stored["run"], "model")}
    assert "model/model.keras" in artifacts and "model/metadata.json" in artifacts
