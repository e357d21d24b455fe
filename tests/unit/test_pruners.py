"""Pruners by name: each is the Optuna class it names, with autotune's defaults, and each really
ends a trial whose curve falls behind, fed through autotune's own reporter and work loop."""

import optuna
import pytest

from autotune import runner
from autotune.errors import StudySpecError
from autotune.pruners import PRUNERS, make_pruner
from autotune.spec import from_dict
from autotune.trial import Reporter, optuna_pruning

from conftest import tiny_raw

MAX_EPOCHS = 9
SPEC = from_dict(tiny_raw(max_epochs=MAX_EPOCHS))
# Options that make each pruner decide on a handful of stub trials.
OPTIONS = {
    "median": {"n_startup_trials": 3, "n_warmup_steps": 1},
    "percentile": {"n_startup_trials": 3, "n_warmup_steps": 1},
    "patient": {"n_startup_trials": 3, "n_warmup_steps": 1, "patience": 0},
    "successive-halving": {"min_resource": 1, "reduction_factor": 2},
    "hyperband": {"reduction_factor": 2},
    "threshold": {"lower": 0.5},
    "none": {},
}
CLASSES = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "patient": optuna.pruners.PatientPruner,
    "successive-halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "none": optuna.pruners.NopPruner,
}


def curves_objective(good: int):
    """Trials 0..good-1 rise from 0.9; every later trial sinks from 0.1. Each epoch goes
    through autotune's Reporter, as a Keras fit's epochs do."""

    def objective(trial: optuna.Trial) -> float:
        start, slope = (0.9, 0.01) if trial.number < good else (0.1, -0.01)
        reporter = Reporter(SPEC, prune=optuna_pruning(trial))
        value = 0.0
        for epoch in range(MAX_EPOCHS):
            value = start + slope * epoch
            reporter.report(epoch, loss=1.0 - value, val_accuracy=value)
        return value

    return objective


def test_the_registry_and_the_classes_match():
    assert sorted(PRUNERS) == sorted(CLASSES)


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_each_name_builds_its_class_with_the_options(name: str):
    pruner = make_pruner(name, MAX_EPOCHS, OPTIONS[name])
    assert type(pruner) is CLASSES[name]


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_each_pruner_prunes_a_trial_that_falls_behind(name: str):
    # a fixed name: Hyperband assigns trials to brackets by a hash of it
    study = optuna.create_study(
        study_name="pruning",
        direction="maximize",
        pruner=make_pruner(name, MAX_EPOCHS, OPTIONS[name]),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    good = 8
    runner.work(study, lambda: curves_objective(good), n_trials=good + 8, echo=None)
    late = [t for t in study.trials if t.number >= good]
    pruned = [t for t in late if t.state == optuna.trial.TrialState.PRUNED]
    if name == "none":
        assert not pruned and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        return
    assert len(pruned) >= len(late) // 2, (
        f"{name} pruned {len(pruned)} of {len(late)} trials stuck near 0.1"
    )
    assert any(len(t.intermediate_values) < MAX_EPOCHS for t in pruned)  # some ended early
    # the first trial, which leads at every epoch, is never pruned
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE


def test_hyperband_uses_max_epochs_as_its_resource():
    pruner = make_pruner("hyperband", 40, {})
    assert pruner._max_resource == 40 and pruner._min_resource == 1


def test_median_waits_for_a_few_trials_and_epochs_by_default():
    pruner = make_pruner("median", 40, {})
    assert pruner._n_startup_trials == 5 and pruner._n_warmup_steps == 3


def test_threshold_without_a_bound_says_how_to_give_one():
    with pytest.raises(
        StudySpecError, match=r"threshold pruner needs a bound: set \[pruner_options\] lower"
    ):
        make_pruner("threshold", 10, {})


def test_bad_pruner_option_is_refused():
    with pytest.raises(StudySpecError, match=r"pruner_options do not fit the median pruner"):
        make_pruner("median", 10, {"n_warmup": 2})


def test_a_bad_pruner_option_in_a_study_file_is_refused_when_it_loads():
    raw = tiny_raw(pruner="median", pruner_options={"n_warmup": 2})
    with pytest.raises(
        StudySpecError,
        match=r"^study.toml: pruner_options do not fit the median pruner: .*n_warmup",
    ):
        from_dict(raw, source="study.toml")
