"""Every sampler name runs a real (tiny) search."""

import optuna
import pytest

from autotune import runner
from autotune.errors import StudySpecError
from autotune.samplers import SAMPLERS
from autotune.spec import from_dict

from conftest import tiny_raw

# grid needs a discrete space
DISCRETE = {"batch_size": 1024, "n_layers": 1, "units": [4, 8], "learning_rate": [0.01, 0.05],
            "optimizer": "adam", "decay": "none", "activation": "relu", "dropout": 0.0,
            "batchnorm": False}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_runs(name: str, sqlite_url: str):
    if name == "gp":
        pytest.importorskip("torch", reason="the gp sampler needs the [gp] extra")
    raw = tiny_raw(sampler=name, n_trials=3, max_epochs=2, pruner="none")
    if name == "grid":
        raw["space"] = DISCRETE
    runner.run(from_dict(raw), storage=sqlite_url, report=None)
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3


def test_grid_on_a_continuous_space_is_refused(sqlite_url: str):
    with pytest.raises(StudySpecError, match=r"grid sampler needs a discrete space, but 'learning_rate' is continuous"):
        runner.run(from_dict(tiny_raw(sampler="grid")), storage=sqlite_url, report=None)


def test_unknown_sampler_option_is_refused(sqlite_url: str):
    raw = tiny_raw(sampler_options={"n_startup": 3})
    with pytest.raises(StudySpecError, match=r"sampler_options do not fit the tpe sampler: .*n_startup"):
        runner.run(from_dict(raw), storage=sqlite_url, report=None)
