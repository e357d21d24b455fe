"""``autotune best``: retrain the best trial, score it on the test split, export and reload it."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
from click.testing import CliRunner

from autotune import best, console, data
from autotune import spec as spec_module
from autotune import study as study_module
from autotune.cli import cli
from autotune.data.preprocess import keras_inputs, of_arrays
from autotune.data.sources import LOADERS
from autotune.trial import trial_seed

from conftest import tiny_raw

# Loads the exported model in a process of its own and scores it on the test split's raw
# examples (the model standardizes them itself).
RELOAD = """
import json, sys
import numpy as np
import keras
from autotune import data
from autotune.data.sources import LOADERS
folder = sys.argv[1]
meta = json.load(open(folder + "/metadata.json"))
model = keras.saving.load_model(folder + "/model.keras")
table = meta["data"]["table"]
dataset = data.load(table)
raw = LOADERS[table["source"]](table["seed"])[0][dataset.rows["test"]]
predicted = model.predict(raw, verbose=0).argmax(axis=1)
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
    # how to call the model: raw examples of circles' two coordinates in, two probabilities out
    assert (meta["task"], meta["target"], meta["classes"], meta["features"]) == (
        "classification",
        None,
        [0, 1],
        [],
    )
    assert meta["inputs"]["kind"] == "array" and meta["inputs"]["shape"] == [2]
    assert meta["outputs"]["kind"] == "probabilities" and meta["outputs"]["columns"] == [0, 1]
    assert len(meta["preprocessing"]["mean"]) == len(meta["preprocessing"]["scale"]) == 2

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


# A CSV whose columns try the front's corners: a scale far below Keras' epsilon, a constant
# column, a category named like Keras' out-of-vocabulary token, a "/" in a column's name, and
# a large offset with a small spread (which float32 would round away, but for the shift).
CORNERS_HEADER = ["size", "drift m/s", "floor", "kind", "stamp", "label"]


def corner_rows(n: int = 90) -> list[list]:
    rng = np.random.default_rng(1)
    return [
        [
            round(float(rng.uniform(30, 150)), 3),
            f"{rng.normal(0, 1e-9):.6e}",
            2,
            ["flat", "[UNK]", "villa"][i % 3],
            repr(1e6 + float(rng.normal())),
            "big" if i % 2 else "small",
        ]
        for i in range(n)
    ]


def test_the_exported_front_encodes_raw_columns_exactly_as_training_did(tmp_path: Path):
    import keras

    rows = corner_rows()
    with (tmp_path / "corners.csv").open("w", newline="") as f:
        csv.writer(f).writerows([CORNERS_HEADER, *rows])
    table = {"source": "csv", "path": "corners.csv", "target": "label", "task": "classification"}
    dataset = data.load(data.validate(table, "s.toml"), tmp_path)
    assert dataset.preprocessing.columns[1].scale < 1e-8  # below Keras' epsilon
    assert abs(dataset.preprocessing.columns[4].shift - 1e6) < 1

    inputs, x = keras_inputs(dataset.preprocessing)
    assert sorted(inputs) == ["drift m_s", "floor", "kind", "size", "stamp"]
    front = keras.Model(inputs, x)
    test = [rows[i] for i in dataset.rows["test"]]

    def columns(rows: list[list]) -> dict:
        return {
            "size": np.array([float(r[0]) for r in rows]),
            "drift m_s": np.array([float(r[1]) for r in rows]),
            "floor": np.array([float(r[2]) for r in rows]),
            "kind": np.array([r[3] for r in rows]),
            "stamp": np.array([float(r[4]) for r in rows]),
        }

    assert np.array_equal(front(columns(test)).numpy(), dataset.x_test)  # to the last bit
    front.save(tmp_path / "front.keras")
    loaded = keras.saving.load_model(tmp_path / "front.keras")
    assert np.array_equal(loaded(columns(test)).numpy(), dataset.x_test)
    # a category that training never saw encodes as all zeros, as in the training arrays
    unseen = columns([[50.0, 0.0, 2, "castle", 1e6]])
    assert loaded(unseen).numpy()[0, 3:6].tolist() == [0.0, 0.0, 0.0]


def test_the_exported_front_of_arrays_standardizes_and_reshapes():
    import keras

    dataset = data.load(data.validate({"source": "digits", "reshape": [8, 8, 1]}, "s.toml"))
    raw = LOADERS["digits"](0)[0][dataset.rows["test"]].astype(np.float32)
    inputs, x = keras_inputs(dataset.preprocessing)
    assert tuple(x.shape[1:]) == (8, 8, 1)
    assert np.array_equal(keras.Model(inputs, x)(raw).numpy(), dataset.x_test)


def sigmoid_best(model) -> best.BestModel:
    return best.BestModel(
        study="s", trial=0, metric="val_accuracy", search_value=0.5, params={}, epochs=1,
        seed=0, data={"source": "circles"}, sizes={}, validation={}, test={}, model=model,
        classes=(0, 1), preprocessing=of_arrays((2,), mean=[1.0, 2.0], scale=[2.0, 4.0]),
    )  # fmt: skip


def test_one_sigmoid_unit_exports_one_probability_per_class_and_logits_become_probabilities(
    tmp_path: Path,
):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(2,))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))
    raw = np.array([[1.0, 2.0], [3.0, -2.0], [0.0, 10.0]], dtype=np.float32)
    p = model((raw - [1.0, 2.0]) / [2.0, 4.0]).numpy()[:, 0]
    exported = best.raw_model(sigmoid_best(model))
    assert np.allclose(exported(raw).numpy(), np.stack([1 - p, p], axis=1), atol=1e-7)

    logits = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    logits.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    probabilities = best.raw_model(sigmoid_best(logits))(raw).numpy()
    assert probabilities.shape == (3, 3) and np.allclose(probabilities.sum(axis=1), 1.0)
