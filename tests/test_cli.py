"""The ``autotune`` command, in-process with CliRunner, and as a real process where it matters."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from autotune.cli import cli

from conftest import FIXTURES, run_command


def invoke(*args: str) -> "object":
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help_with_an_example(command: str):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output


def test_help_studies_and_show_never_import_tensorflow(write_study, sqlite_url: str):
    path = write_study(n_trials=1, max_epochs=1, tensorboard=True, mlflow=True)
    assert invoke("run", "--study", str(path), "--storage", sqlite_url).exit_code == 0
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from autotune.cli import cli\n"
        "outputs = []\n"
        f"for args in (['--help'], ['run', '--help'], ['studies', '--storage', {sqlite_url!r}],"
        f" ['show', '--study', 'tiny', '--storage', {sqlite_url!r}]):\n"
        "    r = CliRunner().invoke(cli, args)\n"
        "    outputs.append((r.exit_code, r.output))\n"
        "print(json.dumps({'tf': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules,"
        " 'trackers': [m for m in ('tensorboard', 'mlflow') if m in sys.modules],"
        " 'outputs': outputs}))\n"
    )
    result = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    assert [code for code, _ in result["outputs"]] == [0, 0, 0, 0]
    assert "tiny" in result["outputs"][3][1]
    assert result["tf"] is False and result["keras"] is False
    assert result["trackers"] == []


def test_run_prints_a_line_per_trial_and_a_summary(write_study, sqlite_url: str):
    path = write_study(n_trials=2, max_epochs=2)
    result = invoke("run", "--study", str(path), "--storage", sqlite_url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        f"Study 'tiny' ({path}): 2 trials, tpe sampler, median pruner, storage {sqlite_url}"
    )
    trial_lines = [line for line in lines if line.startswith("trial ")]
    assert len(trial_lines) == 2
    assert all("best " in line and "learning_rate=" in line for line in trial_lines)
    assert "Study 'tiny': 2 of 2 trials finished" in result.output
    assert f"Storage: {sqlite_url}" in result.output
    assert f"Dashboard: optuna-dashboard '{sqlite_url}'" in result.output


def test_flags_override_the_study_file(write_study, sqlite_url: str):
    path = write_study()
    result = invoke(
        "run",
        "--study",
        str(path),
        "--storage",
        sqlite_url,
        "--n-trials",
        "1",
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--max-epochs",
        "1",
    )
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert len(study.trials) == 1 and study.trials[0].user_attrs["epochs"] == 1
    assert study.user_attrs["autotune:spec"]["sampler"] == "random"


def test_show_lists_the_trials_and_the_best(write_study, sqlite_url: str):
    invoke("run", "--study", str(write_study(n_trials=2, max_epochs=1)), "--storage", sqlite_url)
    result = invoke("show", "--study", "tiny", "--storage", sqlite_url)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith(f"Study 'tiny' in {sqlite_url}: 2 trials (")
    assert lines[0].endswith("), maximize")
    assert lines[2].split()[:2] == ["0", "COMPLETE"]
    assert lines[-2].startswith("Best value: ")


def test_a_bad_study_file_is_one_line_and_exit_1(workdir: Path):
    path = FIXTURES / "unknown_key.toml"
    result = invoke("run", "--study", str(path))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {path}: unknown key(s) max_epoch, n_trails; allowed: artifacts, checkpoint_every,"
        " data, direction,"
        " early_stopping, fit, grace_period, heartbeat_interval, max_epochs, metric, metrics,"
        " mlflow, model, n_trials, name, pruner, pruner_options, sampler, sampler_options, seed,"
        " space, tensorboard, timeout, train.\n"
    )
    assert not (workdir / "autotune.db").exists()


def test_an_unknown_sampler_gets_clicks_choice_error():
    result = invoke("run", "--study", "circles", "--sampler", "tpee")
    assert result.exit_code == 2
    assert "'tpee' is not one of 'cmaes', 'gp', 'grid', 'qmc', 'random', 'tpe'" in result.output


def test_a_bad_storage_url_is_one_line(write_study):
    result = invoke(
        "run", "--study", str(write_study()), "--storage", "postgresql+psycopg://u:pw@127.0.0.1:1/x"
    )
    assert result.exit_code == 1
    error = result.output.splitlines()[-1]
    assert error.startswith(
        "Error: Cannot connect to storage postgresql+psycopg://u:***@127.0.0.1:1/x"
    )
    assert "pw@" not in result.output


def test_show_without_a_storage_says_how_to_make_one(workdir: Path):
    result = invoke("show", "--study", "circles")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: No storage at {workdir / 'autotune.db'} yet. Run a study first (autotune run"
        " --study circles), or name another storage with --storage or $AUTOTUNE_STORAGE.\n"
    )
    assert not (workdir / "autotune.db").exists()


def test_delete_removes_the_study(write_study, sqlite_url: str):
    invoke("run", "--study", str(write_study(n_trials=1, max_epochs=1)), "--storage", sqlite_url)
    result = invoke("delete", "--study", "tiny", "--storage", sqlite_url, "--yes")
    assert result.output == "Deleted study 'tiny' (1 trials).\n"
    assert optuna.get_all_study_names(storage=sqlite_url) == []


def test_env_reports_versions(sqlite_url: str):
    result = invoke("env", "--storage", "postgresql://u:secret@h/db")
    assert "optuna: 5." in result.output and "tensorflow: " in result.output
    assert "storage: postgresql+psycopg://u:***@h/db" in result.output


@pytest.mark.slow
def test_ctrl_c_keeps_finished_trials_and_resume_completes(write_study, sqlite_url: str):
    path = write_study(n_trials=2, max_epochs=150, pruner="none", early_stopping={"patience": 150})
    command = run_command(path, sqlite_url)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("trial "):
            break  # the first trial is finished, so the storage exists
    # Interrupt while the next trial is in the middle of training: it has reported an epoch.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
        if any(t.state.name == "RUNNING" and t.intermediate_values for t in trials):
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    message = stderr.strip().splitlines()[-1]
    assert message.startswith("Stopped by Ctrl-C. ")
    assert f"Resume with: autotune run --study {path} --storage '{sqlite_url}'" in message

    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states
    assert states == ["COMPLETE", "FAIL", "WAITING"]  # the interrupted trial's params, queued again

    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == 2
    assert any(t.user_attrs.get("retry_of") is not None for t in done)


def test_debug_adds_the_traceback_to_the_one_line(workdir: Path, monkeypatch):
    path = FIXTURES / "unknown_key.toml"
    plain = CliRunner().invoke(cli, ["run", "--study", str(path)])
    debug = CliRunner().invoke(cli, ["--debug", "run", "--study", str(path)])
    monkeypatch.setenv("AUTOTUNE_DEBUG", "1")
    by_env = CliRunner().invoke(cli, ["run", "--study", str(path)])
    assert plain.exit_code == debug.exit_code == by_env.exit_code == 1
    assert "Traceback" not in plain.output
    for result in (debug, by_env):
        assert "Traceback (most recent call last)" in result.output
        assert "autotune.errors.StudySpecError" in result.output
        assert result.output.rstrip().endswith(plain.output.rstrip())


def test_a_run_in_a_process_of_its_own_prints_nothing_on_stderr(write_study, sqlite_url: str):
    # Neither TensorFlow's start-up chatter nor Optuna's warnings reach the user.
    path = write_study(n_trials=2, max_epochs=1)
    result = subprocess.run(
        run_command(path, sqlite_url),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Study 'tiny': 2 of 2 trials finished" in result.stdout


def test_a_negative_seed_flag_is_clicks_range_error(workdir: Path):
    result = CliRunner().invoke(cli, ["run", "--study", "circles", "--seed", "-1"])
    assert result.exit_code == 2
    assert "Invalid value for '--seed': -1 is not in the range 0<=x<=4294967295." in result.output
    assert list(workdir.iterdir()) == []
