"""End-to-end searches on tiny studies: real Keras training, real SQLite storage."""

import gc
from pathlib import Path

import numpy as np
import optuna
import pytest

from autotune import console, runner
from autotune import study as study_module
from autotune.data import load
from autotune.errors import SearchFailedError, StudyMismatchError
from autotune.spec import StudySpec, from_dict, resolve

from conftest import nothing_stored, tiny_raw

COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def test_a_run_is_read_back_by_optuna(sqlite_url: str):
    lines: list[str] = []
    runner.run(from_dict(tiny_raw()), storage=sqlite_url, echo=lines.append)

    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    trials = study.get_trials(states=COUNTED)
    assert len(trials) == 3 and len(lines) == 3
    for trial in trials:
        assert set(trial.params) >= {"learning_rate", "optimizer", "decay", "units", "dropout"}
        assert trial.user_attrs["stop_reason"] in ("completed", "early-stopped", "pruned")
        assert 1 <= trial.user_attrs["epochs"] <= 3
        assert trial.user_attrs["seconds"] > 0
        assert len(trial.intermediate_values) == trial.user_attrs["epochs"]
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    for trial in complete:
        # the value is the best epoch's validation accuracy
        assert trial.value == max(trial.intermediate_values.values())
    assert study.user_attrs["autotune:spec"]["name"] == "tiny"
    assert study.metric_names == ["val_accuracy"]


def test_a_resume_reaches_the_total_and_a_finished_study_does_nothing(sqlite_url: str):
    runner.run(from_dict(tiny_raw(n_trials=2)), storage=sqlite_url, echo=None)
    runner.run(from_dict(tiny_raw(n_trials=4)), storage=sqlite_url, echo=None)
    lines: list[str] = []
    runner.run(from_dict(tiny_raw(n_trials=4)), storage=sqlite_url, echo=lines.append)

    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert len(study.get_trials(states=COUNTED)) == 4
    assert lines == [
        "The study has its 4 trials already. To search further, raise the total with --n-trials."
    ]


def test_finished_trials_leave_no_traced_functions_behind(sqlite_url: str):
    # Each fit traces new functions; a leak keeps them (and their graphs and models) for good.
    from tensorflow.python.eager import context
    from tensorflow.python.framework import ops

    def held() -> tuple[set[str], int]:
        gradients = sum(1 for name in ops._gradient_registry._registry if "CustomGradient" in name)
        # "__wrapped__<op>" functions are TensorFlow's cache of eager ops, one per op signature.
        traced = {n for n in context.context().list_function_names() if "__wrapped__" not in n}
        return traced, gradients

    before, gradients_before = held()  # what earlier tests in this process left
    runner.run(from_dict(tiny_raw(n_trials=2, pruner="none")), storage=sqlite_url, echo=None)
    after_two, gradients = held()
    runner.run(from_dict(tiny_raw(n_trials=6, pruner="none")), storage=sqlite_url, echo=None)
    after_six, gradients_after = held()
    # What the last trial traced is freed as the next one starts: nothing that the first run's
    # trials traced is left after the second's, however many trials ran, and no gradient
    # function.
    traced_by_first = after_two - before
    assert traced_by_first and after_six.isdisjoint(traced_by_first)
    # A finished run's objective goes at the next collection, with the training pipeline that
    # its trials shared.
    gc.collect()
    assert not any(name.startswith("__inference_Dataset_") for name in held()[0])
    assert gradients == gradients_after == gradients_before
    assert gc.get_freeze_count() == 0  # the process's objects are the collector's again


def test_a_changed_space_is_refused_with_a_way_out(sqlite_url: str):
    runner.run(from_dict(tiny_raw(n_trials=1)), storage=sqlite_url, echo=None)
    changed = from_dict(tiny_raw(n_trials=2, space={"units": 8}), source="tiny.toml")
    with pytest.raises(
        StudyMismatchError,
        match=r"was searched with another space; its trials cannot be mixed .* `autotune delete --study tiny`",
    ):
        runner.run(changed, storage=sqlite_url, echo=None)
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert len(study.trials) == 1


def test_a_diverging_trial_fails_and_the_study_goes_on(sqlite_url: str):
    # Plain SGD with a learning rate of 1e30 turns the loss to NaN in the first epoch.
    space = {
        "batch_size": 1024,
        "n_layers": 1,
        "units": 8,
        "optimizer": "sgd",
        "decay": "none",
        "batchnorm": False,
        "dropout": 0.0,
        "activation": "relu",
        "learning_rate": [1e30, 0.05],
    }
    spec = from_dict(tiny_raw(n_trials=2, sampler="random", pruner="none", space=space))
    runner.run(spec, storage=sqlite_url, echo=None)

    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert failed, "no trial diverged"
    assert all(t.user_attrs["stop_reason"] == "diverged" for t in failed)
    assert all(t.params["learning_rate"] == 1e30 for t in failed)
    assert len(study.get_trials(states=COUNTED)) == 2


def test_a_study_where_every_trial_fails_stops_with_the_reason(sqlite_url: str):
    space = {
        "batch_size": 1024,
        "n_layers": 1,
        "units": 8,
        "optimizer": "sgd",
        "decay": "none",
        "learning_rate": 1e30,
        "activation": "relu",
    }
    spec = from_dict(tiny_raw(n_trials=2, sampler="random", pruner="none", space=space))
    with pytest.raises(
        SearchFailedError, match=r"10 trials in a row failed, the last because it diverged"
    ):
        runner.run(spec, storage=sqlite_url, echo=None)


def test_same_seed_gives_the_same_search(workdir: Path):
    spec = from_dict(tiny_raw(n_trials=3))
    results = []
    for name in ("a.db", "b.db"):
        study = runner.run(spec, storage=f"sqlite:///{workdir / name}", echo=None)
        results.append([(t.params, t.state, t.value) for t in study.trials])
    assert [r[:2] for r in results[0]] == [r[:2] for r in results[1]]
    for (_, _, a), (_, _, b) in zip(*results, strict=False):
        assert a == pytest.approx(b, abs=1e-6)


def write_table(folder: Path, n: int = 200) -> Path:
    """A small CSV of a user's kind: numbers, a text category, a class and a price."""
    import numpy as np

    rng = np.random.default_rng(0)
    lines = ["size,district,kind,price"]
    for i in range(n):
        size, district = rng.uniform(30, 150), ["north", "south", "east"][i % 3]
        price = 0.02 * size + (district == "north") + rng.normal(0, 0.1)
        lines.append(f"{size:.1f},{district},{'big' if size > 90 else 'small'},{price:.3f}")
    path = folder / "houses.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_user_model_on_a_user_csv_runs_from_its_study_folder(workdir: Path):
    from conftest import USER_MODEL

    folder = workdir / "mine"
    folder.mkdir()
    write_table(folder)
    (folder / "model.py").write_text(USER_MODEL)
    data = {
        "source": "csv",
        "path": "houses.csv",
        "target": "kind",
        "task": "classification",
        "features": ["size", "district"],
    }
    spec = from_dict(
        tiny_raw(
            model="model.py:build",
            n_trials=2,
            max_epochs=2,
            data=data,
            space={"batch_size": 1024, "units": {"high": 8}, "width": [1, 2]},
        ),
        source=str(folder / "mine.toml"),
        base=folder,
    )
    study = runner.run(spec, storage=f"sqlite:///{workdir / 'x.db'}", echo=None)

    trials = study.get_trials(states=COUNTED)
    assert len(trials) == 2
    for trial in trials:
        # the module's SPACE, narrowed, plus a parameter [space] added for this family
        assert trial.params["units"] <= 8 and 0 <= trial.params["dropout"] <= 0.3
        assert trial.params["width"] in (1, 2) and "optimizer" in trial.params
    assert study.user_attrs["autotune:spec"]["folder"] == str(folder)
    # the stored spec finds the user's files from anywhere, as a worker on another machine does
    again = study_module.stored_spec(study)
    assert (
        again.fingerprint() == spec.fingerprint() and load(again.data, again.folder).n_outputs == 2
    )


def test_a_regression_study_minimizes_val_mae_with_pruning(workdir: Path, sqlite_url: str):
    write_table(workdir)
    data = {
        "source": "csv",
        "path": "houses.csv",
        "target": "price",
        "task": "regression",
        "features": ["size", "district"],
    }
    spec = from_dict(
        tiny_raw(
            metric="val_mae",
            n_trials=3,
            max_epochs=3,
            data=data,
            pruner_options={"n_startup_trials": 1, "n_warmup_steps": 0},
        )
    )
    assert spec.direction == "minimize"
    study = runner.run(spec, storage=sqlite_url, echo=None)

    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert complete and study.best_value == min(t.value for t in complete)
    for trial in complete:
        assert len(trial.intermediate_values) == trial.user_attrs["epochs"]
        assert trial.value == min(trial.intermediate_values.values())  # the best epoch, from below
    text = console.summary(study, spec, sqlite_url)
    assert f"Best val_mae: {study.best_value:.4f} (trial {study.best_trial.number}," in text


def one_trial_of(name: str, max_epochs: int, **space: object) -> StudySpec:
    """A shipped study cut down to one short trial of Adam at 0.01 on batches of 32, with
    ``space`` fixing the model's parameters."""
    spec = resolve(name).with_overrides(n_trials=1, max_epochs=max_epochs)
    fixed = {"batch_size": 32, "learning_rate": 0.01, "optimizer": "adam", "decay": "none"}
    return from_dict({**spec.to_dict(), "space": {**fixed, **space}}, source=spec.source)


def test_the_cnn_searches_digits_as_images(sqlite_url: str):
    spec = one_trial_of("digits_cnn", 1, filters=8, conv_blocks=2, units=16, n_layers=1)
    study = runner.run(spec, storage=sqlite_url, echo=None)
    (trial,) = study.get_trials(states=COUNTED)
    assert trial.value > 0.3  # far above chance (0.1) after one epoch


def test_the_shipped_friedman_study_is_a_regression_on_val_mae(sqlite_url: str):
    spec = one_trial_of("friedman", 3, units=32, n_layers=1, dropout=0.0, batchnorm=False)
    study = runner.run(spec, storage=sqlite_url, echo=None)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.metric_names == ["val_mae"]
    (trial,) = study.get_trials(states=COUNTED)
    assert trial.value == min(trial.intermediate_values.values())
    dataset = load(spec.data, spec.folder)
    mean_guess = float(np.abs(dataset.y_val - dataset.y_train.mean()).mean())
    assert trial.value < 0.7 * mean_guess  # learned far more than the targets' mean


def test_a_bad_builder_stops_the_study_before_any_trial(workdir: Path, sqlite_url: str):
    from autotune.errors import ModelError

    from conftest import USER_MODEL

    (workdir / "model.py").write_text(USER_MODEL.replace("return keras.Model", "return"))
    spec = from_dict(tiny_raw(model="model.py:build", space={"batch_size": 1024}), source="s.toml")
    with pytest.raises(
        ModelError,
        match=r"s.toml: model 'model.py:build' returned tuple, not a keras.Model. Make it return the model",
    ):
        runner.run(spec, storage=sqlite_url, echo=None)
    assert nothing_stored(sqlite_url)


def test_the_python_api_takes_a_study_by_keyword_path_or_dict(write_study, sqlite_url: str):
    import autotune

    path = write_study(n_trials=1, max_epochs=1)
    study = autotune.run(study=path, storage=sqlite_url, echo=None)
    assert len(study.get_trials(states=COUNTED)) == 1
    study = autotune.run(study=str(path), storage=sqlite_url, n_trials=2, echo=None)
    assert len(study.get_trials(states=COUNTED)) == 2
    assert autotune.load_spec(tiny_raw(max_epochs=1)).name == "tiny"
    assert isinstance(autotune.load_spec("circles"), autotune.StudySpec)


def test_a_study_stopped_by_a_data_mistake_runs_once_it_is_fixed(workdir: Path, sqlite_url: str):
    from autotune.errors import DataError

    write_table(workdir)
    data = {"source": "csv", "path": "houses.csv", "target": "Kind", "task": "classification"}
    with pytest.raises(
        DataError, match=r"no target column 'Kind'; the columns are: size, district, kind, price"
    ):
        runner.run(from_dict(tiny_raw(data=data)), storage=sqlite_url, echo=None)
    # the study exists, without trials: the corrected [data] table is no other objective
    fixed = from_dict(tiny_raw(n_trials=1, max_epochs=1, data={**data, "target": "kind"}))
    study = runner.run(fixed, storage=sqlite_url, echo=None)
    assert len(study.get_trials(states=COUNTED)) == 1


# A builder that fails for some configurations only: wide models run out of memory, and an
# odd number of units is refused by the user's own check.
PICKY_MODEL = """
SPACE = {"units": {"low": 4, "high": 16}}

def build(params, input_shape, n_outputs):
    import keras
    import tensorflow as tf
    if params["units"] > 12:
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
    if params["units"] % 2:
        raise ValueError("units must be even")
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Dense(params["units"], activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
"""


def test_a_builder_failing_for_some_configurations_fails_those_trials_only(
    workdir: Path, sqlite_url: str
):
    (workdir / "model.py").write_text(PICKY_MODEL)
    space = {
        "batch_size": 1024,
        "units": [5, 8, 14],
        "learning_rate": 0.05,
        "optimizer": "adam",
        "decay": "none",
    }
    spec = from_dict(
        tiny_raw(
            model="model.py:build",
            n_trials=2,
            max_epochs=1,
            sampler="grid",
            pruner="none",
            space=space,
        ),
        source="s.toml",
        base=workdir,
    )
    study = runner.run(spec, storage=sqlite_url, echo=None)

    by_units = {t.params["units"]: t for t in study.trials}
    assert by_units[8].state == optuna.trial.TrialState.COMPLETE
    odd, wide = by_units[5], by_units[14]
    assert odd.state == wide.state == optuna.trial.TrialState.FAIL
    assert odd.user_attrs["stop_reason"] == "failed"
    assert odd.user_attrs["fail_reason"].startswith(
        "s.toml: model 'model.py:build' raised ValueError: units must be even (model.py, line 10)"
        " when building with"
    )
    assert "line 10, in build" in odd.user_attrs["traceback"]
    assert wide.user_attrs["stop_reason"] == "oom"
    assert wide.user_attrs["fail_reason"].startswith(
        "out of memory: s.toml: model 'model.py:build' raised ResourceExhaustedError"
    )
    # the search went on past both failures to its total, on the grid's one good point
    tally = study_module.counts(study)
    assert (tally.finished, tally.failed) == (2, 2)
    assert {t.params["units"] for t in study.trials if t.state.name == "COMPLETE"} == {8}


def test_a_run_that_fails_its_checks_changes_nothing_stored(sqlite_url: str):
    from autotune.errors import AutotuneError

    runner.run(from_dict(tiny_raw(n_trials=1, max_epochs=1)), storage=sqlite_url, echo=None)
    before = optuna.load_study(study_name="tiny", storage=sqlite_url).user_attrs
    spec = from_dict(tiny_raw(n_trials=3, max_epochs=1))
    with pytest.raises(
        AutotuneError,
        match=r"Cannot warm-start from 'tinyy': no such study in this storage; it holds: tiny\.",
    ):
        runner.run(
            spec, storage=sqlite_url, seed=5, sampler="random", warm_start="tinyy", echo=None
        )
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert study.user_attrs == before  # n_trials, sampler and seed as the last good run left them
    assert len(study.trials) == 1
    # and best retrains with the seed its trial used, whatever later runs pass
    assert study.trials[0].user_attrs["seed"] == 0
