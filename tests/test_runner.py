"""End-to-end searches on tiny studies: real Keras training, real SQLite storage."""

from pathlib import Path

import optuna
import pytest

from autotune import runner
from autotune.errors import StudyMismatchError
from autotune.spec import from_dict

from conftest import tiny_raw

COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def test_a_run_is_read_back_by_optuna(sqlite_url: str):
    lines: list[str] = []
    runner.run(from_dict(tiny_raw()), storage=sqlite_url, report=lines.append)

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


def test_a_resume_reaches_the_total_and_a_finished_study_does_nothing(sqlite_url: str):
    runner.run(from_dict(tiny_raw(n_trials=2)), storage=sqlite_url, report=None)
    runner.run(from_dict(tiny_raw(n_trials=4)), storage=sqlite_url, report=None)
    lines: list[str] = []
    runner.run(from_dict(tiny_raw(n_trials=4)), storage=sqlite_url, report=lines.append)

    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert len(study.get_trials(states=COUNTED)) == 4
    assert lines == [
        "The study has its 4 trials already. To search further, raise the total with --n-trials."
    ]


def test_a_changed_space_is_refused_with_a_way_out(sqlite_url: str):
    runner.run(from_dict(tiny_raw(n_trials=1)), storage=sqlite_url, report=None)
    changed = from_dict(tiny_raw(n_trials=2, space={"units": 8}), source="tiny.toml")
    with pytest.raises(StudyMismatchError, match=r"was searched with another space; its trials cannot be mixed .* `autotune delete --study tiny`"):
        runner.run(changed, storage=sqlite_url, report=None)
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert len(study.trials) == 1


def test_a_diverging_trial_fails_and_the_study_goes_on(sqlite_url: str):
    # Plain SGD with a learning rate of 1e30 turns the loss to NaN in the first epoch.
    space = {
        "batch_size": 1024, "n_layers": 1, "units": 8, "optimizer": "sgd", "decay": "none",
        "batchnorm": False, "dropout": 0.0, "activation": "relu", "learning_rate": [1e30, 0.05],
    }
    spec = from_dict(tiny_raw(n_trials=2, sampler="random", pruner="none", space=space))
    runner.run(spec, storage=sqlite_url, report=None)

    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert failed, "no trial diverged"
    assert all(t.user_attrs["stop_reason"] == "diverged" for t in failed)
    assert all(t.params["learning_rate"] == 1e30 for t in failed)
    assert len(study.get_trials(states=COUNTED)) == 2


def test_a_study_where_every_trial_fails_stops_with_the_reason(sqlite_url: str):
    space = {
        "batch_size": 1024, "n_layers": 1, "units": 8, "optimizer": "sgd", "decay": "none",
        "learning_rate": 1e30, "activation": "relu",
    }
    spec = from_dict(tiny_raw(n_trials=2, sampler="random", pruner="none", space=space))
    with pytest.raises(runner.AutotuneError, match=r"10 trials in a row failed, the last because it diverged"):
        runner.run(spec, storage=sqlite_url, report=None)


def test_same_seed_gives_the_same_search(workdir: Path):
    spec = from_dict(tiny_raw(n_trials=3))
    results = []
    for name in ("a.db", "b.db"):
        study = runner.run(spec, storage=f"sqlite:///{workdir / name}", report=None)
        results.append([(t.params, t.state, t.value) for t in study.trials])
    assert [r[:2] for r in results[0]] == [r[:2] for r in results[1]]
    for (_, _, a), (_, _, b) in zip(*results):
        assert a == pytest.approx(b, abs=1e-6)
