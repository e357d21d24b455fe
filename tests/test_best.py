"""``autotune best``: retrain the best trial, score it on the test split, export and reload it."""

import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
from click.testing import CliRunner

from autotune import best, console
from autotune import spec as spec_module
from autotune import study as study_module
from autotune.cli import cli
from autotune.trial import trial_seed

from conftest import tiny_raw

# Loads the exported model in a process of its own and scores it on the test split.
RELOAD = """
import json, sys
import numpy as np
import keras
from autotune import data
folder = sys.argv[1]
meta = json.load(open(folder + "/metadata.json"))
model = keras.saving.load_model(folder + "/model.keras")
dataset = data.load(meta["data"]["table"])
predicted = model.predict(dataset.x_test, verbose=0).argmax(axis=1)
print(json.dumps({"accuracy": float(np.mean(predicted == dataset.y_test)), "n": len(predicted)}))
"""


def test_best_retrains_prints_side_by_side_and_exports_a_loadable_model(
    finished_study: str, tmp_path: Path
):
    folder = tmp_path / "model"
    result = CliRunner().invoke(
        cli,
        ["best", "--study", "tiny", "--storage", finished_study, "--export", str(folder)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="tiny", storage=finished_study)
    trial = study_module.best_trial(study)
    epochs = trial.user_attrs["best_epoch"]
    lines = result.output.splitlines()
    assert lines[0] == (
        f"Best trial {trial.number} of study 'tiny': val_accuracy {trial.value:.4f} in the search."
    )
    assert lines[1] == (
        f"Retrained on the training split (600 samples) for {epochs} epoch{'s' * (epochs > 1)}"
        f" (the trial's best), seed {trial_seed(0, trial.number)}."
    )
    assert lines[2].split() == ["metric", "validation", "test"]
    figures = {line.split()[0]: line.split()[1:] for line in lines[3:5]}
    assert sorted(figures) == ["accuracy", "loss"]
    # Trained as its trial trained, the model scores on validation what the search recorded.
    assert figures["accuracy"][0] == f"{trial.value:.4f}"
    assert lines[5] == (
        "Validation: 200 samples, the search's own; test: 200 samples, never seen by the search."
    )
    assert lines[6] == (
        f"Exported to {folder}: model.keras (load with keras.saving.load_model) and metadata.json."
    )

    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["trial"] == trial.number and meta["params"] == trial.params
    assert meta["epochs"] == epochs and meta["trained_on"] == "train"
    assert meta["seed"] == trial_seed(0, trial.number)
    assert meta["data"] == {
        "table": {"source": "circles", "seed": 0, "validation_fraction": 0.2, "test_fraction": 0.2},
        "sizes": {"train": 600, "validation": 200, "test": 200},
    }
    assert set(meta["versions"]) == {
        "python",
        "autotune",
        "tensorflow",
        "keras",
        "optuna",
        "numpy",
        "scikit-learn",
    }
    assert f"{meta['metrics']['test']['accuracy']:.4f}" == figures["accuracy"][1]

    reloaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", RELOAD, str(folder)], capture_output=True, text=True, check=True
        ).stdout.splitlines()[-1]
    )
    assert reloaded["n"] == 200
    assert f"{reloaded['accuracy']:.4f}" == figures["accuracy"][1]
    assert abs(reloaded["accuracy"] - meta["metrics"]["test"]["accuracy"]) < 1e-6


def test_a_study_without_a_complete_trial_has_no_best_model(sqlite_url: str):
    study_module.open_study(spec_module.from_dict(tiny_raw()), sqlite_url)  # created, never run
    result = CliRunner().invoke(cli, ["best", "--study", "tiny", "--storage", sqlite_url])
    assert result.exit_code == 1
    assert result.output == (
        "Error: Study 'tiny' has no complete trial yet, so it has no best model. Run it first:"
        " autotune run --study tiny\n"
    )


def test_describe_lines_up_the_figures():
    model = best.BestModel(
        study="s",
        trial=3,
        metric="val_loss",
        search_value=0.25,
        params={},
        epochs=1,
        seed=3,
        data={},
        sizes={"train": 6, "validation": 2, "test": 2},
        validation={"loss": 0.25, "accuracy": 0.5},
        test={"loss": 0.5, "accuracy": 1.0},
    )
    assert console.best_model(model)[1:5] == [
        "Retrained on the training split (6 samples) for 1 epoch (the trial's best), seed 3.",
        "metric        validation        test",
        "accuracy          0.5000      1.0000",
        "loss              0.2500      0.5000",
    ]
    assert re.match(r"Best trial 3 of study 's': val_loss 0\.2500", console.best_model(model)[0])
