"""A user's own training: a GradientTape loop (`train = ...`), a `fit` of their own, any metric,
and one sigmoid output; the article's circles example and the imbalanced fraud example."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from autotune import best, runner
from autotune import study as study_module
from autotune.cli import cli
from autotune.spec import from_dict, load

from conftest import LOOP, REPORT, nothing_stored, tiny_raw, to_toml

EXAMPLES = Path(__file__).parent.parent / "examples"
COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

LOOP_SPACE = {"batch_size": 128, "learning_rate": 0.05, "optimizer": "adam", "decay": "none"}


def loop_study(folder: Path, report: str = REPORT, **overrides) -> Path:
    """A study file whose training loop reports each epoch with ``report``."""
    (folder / "loop.py").write_text(LOOP.replace("REPORT", report))
    settings = {"n_trials": 2, "max_epochs": 3, "pruner": "none", "space": dict(LOOP_SPACE)}
    raw = tiny_raw(**{**settings, **overrides})
    raw["train"] = "loop.py:train"
    path = folder / "loop.toml"
    path.write_text(to_toml(raw))
    return path


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_a_training_loop_is_searched_pruned_and_early_stopped(workdir: Path, sqlite_url: str):
    path = loop_study(workdir, n_trials=4, max_epochs=30, early_stopping={"patience": 2})
    study = runner.run(load(path), storage=sqlite_url, echo=None)
    trials = study.get_trials(states=COUNTED)
    assert len(trials) == 4
    for trial in trials:
        assert trial.user_attrs["epochs"] == len(trial.intermediate_values)
        assert 4 <= trial.params["units"] <= 16
    assert any(t.user_attrs["stop_reason"] == "early-stopped" for t in trials)
    assert study.best_value >= 0.95


def test_best_retrains_a_loop_and_reproduces_the_trials_value(workdir: Path, sqlite_url: str):
    path = loop_study(workdir, n_trials=2, max_epochs=4)
    study = runner.run(load(path), storage=sqlite_url, echo=None)
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        again = best.retrain(study, trial)
        assert again.epochs == trial.user_attrs["best_epoch"]
        # the loop's own accuracy of the best epoch, and Keras' binary accuracy (at 0.5) of the
        # model retrained with the same seed for that many epochs
        assert again.validation["accuracy"] == pytest.approx(trial.value, abs=1e-6)
        assert set(again.test) == {"accuracy", "loss"}


@pytest.mark.parametrize(
    "report, message",
    [
        (
            "pass",
            r"train 'loop.py:train' never called reporter.report\(epoch, ...\); call it once per epoch with the metrics, val_accuracy among them\.",
        ),
        (
            "reporter.report(epoch, loss=loss, accuracy=accuracy.result())",
            r"train 'loop.py:train' reported accuracy, loss at epoch 0, but not the study's metric val_accuracy\. Report it, or set metric to one of those\.",
        ),
        (
            "reporter.report(0, loss=loss, val_accuracy=accuracy.result())",
            r"train 'loop.py:train' reported epoch 0 after epoch 0; report every epoch once, in order, counting from 0\.",
        ),
        (
            "reporter.report(epoch + 1, loss=loss, val_accuracy=accuracy.result())",
            r"train 'loop.py:train' reported epoch 1 after none; report every epoch once, in order, counting from 0\.",
        ),
    ],
)
def test_a_loop_that_reports_wrongly_is_one_line_before_any_trial(
    workdir: Path, sqlite_url: str, report: str, message: str
):
    path = loop_study(workdir, report=report)
    result = run_cli("run", "--study", str(path), "--storage", sqlite_url)
    assert result.exit_code == 1, result.output
    error = result.output.splitlines()[-1]
    assert error.startswith(f"Error: {path}: train 'loop.py:train'")
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1
    assert re.search(message, error), error
    assert nothing_stored(sqlite_url)


def test_a_loop_that_returns_no_model_is_one_line(workdir: Path, sqlite_url: str):
    path = loop_study(workdir)
    source = (workdir / "loop.py").read_text().replace("    return model\n", "    return None\n")
    (workdir / "loop.py").write_text(source)
    result = run_cli("run", "--study", str(path), "--storage", sqlite_url)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: {path}: train 'loop.py:train' returned NoneType, not the trained keras.Model."
        " End it with: return model"
    )


def test_a_loop_failing_for_some_configurations_fails_those_trials_only(
    workdir: Path, sqlite_url: str
):
    path = loop_study(workdir, n_trials=2, space={**LOOP_SPACE, "units": [4, 16]}, sampler="grid")
    source = (
        (workdir / "loop.py")
        .read_text()
        .replace(
            "    optimizer = data.optimizer()\n",
            "    optimizer = data.optimizer()\n    if params['units'] > 8:\n"
            "        raise MemoryError('too wide')\n",
        )
    )
    (workdir / "loop.py").write_text(source)
    study = runner.run(load(path), storage=sqlite_url, echo=None)
    wide = [t for t in study.trials if t.params["units"] == 16]
    assert wide and all(t.state.name == "FAIL" for t in wide)
    assert wide[0].user_attrs["stop_reason"] == "oom"
    assert (
        "train 'loop.py:train' raised MemoryError: too wide (loop.py, line"
        in wide[0].user_attrs["fail_reason"]
    )
    assert study_module.counts(study).finished == 2


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"fit": "model.py:fit"},
            r"names both train and fit; a training loop trains the model itself",
        ),
        (
            {"model": "mlp"},
            r"train = 'loop.py:train' builds and trains its own model, so model = 'mlp' would not be used; leave model out",
        ),
        (
            {"train": "loop.py:nope"},
            r"train 'loop.py:nope': .*loop.py has no 'nope'; it defines train",
        ),
    ],
)
def test_a_study_that_cannot_name_its_training_is_refused_when_it_loads(
    workdir: Path, change, message
):
    loop_study(workdir)
    (workdir / "model.py").write_text("def fit(params, model, data, callbacks):\n    pass\n")
    raw = {**tiny_raw(space=dict(LOOP_SPACE)), "train": "loop.py:train", **change}
    from autotune.errors import AutotuneError

    with pytest.raises(AutotuneError, match=message):
        from_dict(raw, source="s.toml", base=workdir)


def test_a_loop_with_the_wrong_arguments_is_refused_when_it_loads(workdir: Path):
    (workdir / "loop.py").write_text("def train(params, data):\n    pass\n")
    from autotune.errors import ModelError

    with pytest.raises(
        ModelError,
        match=r"train 'loop.py:train' must take \(params, data, reporter\), but it takes \(params, data\)",
    ):
        from_dict({**tiny_raw(), "train": "loop.py:train"}, source="s.toml", base=workdir)


# A user's fit, passing autotune's callbacks on (or not), returning the History (or not).
FIT = """
def fit(params, model, data, callbacks):
    return model.fit(data.train, validation_data=data.validation, epochs=data.epochs,
                     callbacks=CALLBACKS, shuffle=False, verbose=0)
"""


@pytest.mark.parametrize(
    "callbacks, ending, message",
    [
        (
            "[]",
            "",
            r"fit 'model.py:fit' trained, but no epoch reached autotune: pass the callbacks it receives on to model.fit\(..., callbacks=callbacks\)\.",
        ),
        (
            "callbacks",
            "    return None\n",
            r"fit 'model.py:fit' returned NoneType, not the History that model.fit returns\. End it with: return model.fit\(...\)",
        ),
    ],
)
def test_a_fit_that_breaks_the_contract_is_one_line_before_any_trial(
    workdir: Path, sqlite_url: str, callbacks, ending, message
):
    source = FIT.replace("CALLBACKS", callbacks)
    if ending:
        source = source.replace("    return model.fit(", "    model.fit(") + ending
    (workdir / "model.py").write_text(source)
    raw = {**tiny_raw(space={"batch_size": 1024}), "fit": "model.py:fit"}
    with pytest.raises(Exception, match=message):
        runner.run(from_dict(raw, source="s.toml", base=workdir), storage=sqlite_url, echo=None)
    assert nothing_stored(sqlite_url)


# A two-class model of a user's builder that ends in one sigmoid unit.
SIGMOID_MODEL = """
def build(params, input_shape, n_outputs):
    import keras
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Dense(params.get("units", 8), activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
"""


def test_one_sigmoid_output_trains_with_binary_cross_entropy_and_scores_accuracy(
    workdir: Path, sqlite_url: str
):
    (workdir / "model.py").write_text(SIGMOID_MODEL)
    raw = tiny_raw(model="model.py:build", n_trials=2, max_epochs=3, pruner="none",
                   space={"batch_size": 1024, "learning_rate": 0.05, "optimizer": "adam",
                          "units": [8, 16]}, metrics=["auc"])  # fmt: skip
    study = runner.run(from_dict(raw, source="s.toml", base=workdir), storage=sqlite_url, echo=None)
    trial = study.best_trial
    assert 0.5 < trial.value <= 1.0  # an accuracy, thresholded at 0.5
    again = best.retrain(study)
    assert again.validation["accuracy"] == pytest.approx(trial.value, abs=1e-6)
    assert 0.5 <= again.validation["auc"] <= 1.0 and 0.5 <= again.test["auc"] <= 1.0
    assert again.validation["loss"] < 0.7  # binary cross-entropy of a model better than chance


def test_the_articles_example_reaches_099_with_pruned_and_early_stopped_trials(workdir: Path):
    folder = workdir / "circles_loop"
    shutil.copytree(EXAMPLES / "circles_loop", folder)
    url = f"sqlite:///{workdir / 'loop.db'}"
    result = run_cli("run", "--study", str(folder / "circles_loop.toml"), "--storage", url,
                     "--n-trials", "16")  # fmt: skip
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="circles_loop", storage=url)
    reasons = {t.user_attrs.get("stop_reason") for t in study.trials}
    assert study.best_value >= 0.99
    assert {"pruned", "early-stopped"} <= reasons
    report = workdir / "report.html"
    assert (
        run_cli(
            "report", "--study", "circles_loop", "--storage", url, "--out", str(report)
        ).exit_code
        == 0
    )
    text = report.read_text()
    assert "Learning curves (val_accuracy per epoch)" in text and 'class="note"' not in text

    export = workdir / "model"
    result = run_cli("best", "--study", "circles_loop", "--storage", url, "--export", str(export))
    assert result.exit_code == 0, result.output
    assert "accuracy          1.0000" in result.output or "accuracy          0.99" in result.output
    # The exported subclassed model loads in a process without autotune, given its class; it
    # takes raw coordinates and gives one probability per class (1 - p and the sigmoid's p).
    code = (
        "import sys, json, keras, numpy as np\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        "import network\n"
        f"model = keras.saving.load_model({str(export / 'model.keras')!r})\n"
        "print(json.dumps(model(np.zeros((3, 2), 'float32')).numpy().shape))\n"
    )
    shape = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert shape.returncode == 0, shape.stderr[-2000:]
    assert json.loads(shape.stdout.splitlines()[-1]) == [3, 2]


def test_a_fit_with_class_weights_on_val_auc_runs_shows_exports_and_reports(workdir: Path):
    folder = workdir / "fraud"
    shutil.copytree(EXAMPLES / "fraud", folder)
    url = f"sqlite:///{workdir / 'fraud.db'}"
    study_file = str(folder / "fraud.toml")
    result = run_cli("run", "--study", study_file, "--storage", url, "--n-trials", "3",
                     "--max-epochs", "4")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Best val_auc: " in result.output
    study = optuna.load_study(study_name="fraud", storage=url)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert all(
        0.0 <= t.value <= 1.0 for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    )

    shown = run_cli("show", "--study", study_file, "--storage", url)
    assert shown.exit_code == 0 and "Best value: " in shown.output
    export = workdir / "model"
    exported = run_cli("best", "--study", "fraud", "--storage", url, "--export", str(export))
    assert exported.exit_code == 0, exported.output
    rows = {line.split()[0] for line in exported.output.splitlines()[3:9]}
    assert {"auc", "precision", "recall", "f1", "accuracy", "loss"} <= rows
    metadata = json.loads((export / "metadata.json").read_text())
    assert metadata["metric"] == "val_auc"
    assert metadata["metrics"]["validation"]["auc"] == pytest.approx(study.best_value, abs=1e-6)
    report = run_cli(
        "report", "--study", "fraud", "--storage", url, "--out", str(workdir / "r.html")
    )
    assert report.exit_code == 0
    assert "Learning curves (val_auc per epoch)" in (workdir / "r.html").read_text()
