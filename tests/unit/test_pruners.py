"""Every pruner name runs a real (tiny) search, fed per-epoch validation accuracy."""

import optuna
import pytest

from autotune import runner
from autotune.errors import StudySpecError
from autotune.pruners import PRUNERS, make_pruner
from autotune.spec import from_dict

from conftest import tiny_raw


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_every_pruner_runs(name: str, sqlite_url: str):
    options = {"lower": 0.99, "n_warmup_steps": 1} if name == "threshold" else {}
    raw = tiny_raw(pruner=name, pruner_options=options, n_trials=3, max_epochs=3)
    runner.run(from_dict(raw), storage=sqlite_url, report=None)
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    finished = study.get_trials(
        states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    )
    assert len(finished) == 3
    if name == "threshold":
        # a 0.99 floor after one epoch prunes the tiny model's trials
        assert any(t.state == optuna.trial.TrialState.PRUNED for t in finished)


def test_hyperband_uses_max_epochs_as_its_resource():
    pruner = make_pruner("hyperband", 40, {})
    assert pruner._max_resource == 40


def test_threshold_without_a_bound_says_how_to_give_one():
    with pytest.raises(StudySpecError, match=r"threshold pruner needs a bound: set \[pruner_options\] lower"):
        make_pruner("threshold", 10, {})


def test_bad_pruner_option_is_refused():
    with pytest.raises(StudySpecError, match=r"pruner_options do not fit the median pruner"):
        make_pruner("median", 10, {"n_warmup": 2})
