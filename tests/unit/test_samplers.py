"""Samplers by name: each is the Optuna class it names, seeded and with the study file's
options, and each drives autotune's own work loop over the study's real space."""

import math

import optuna
import pytest

from autotune import runner
from autotune.errors import SearchFailedError, StudySpecError, TrialOutOfMemory
from autotune.samplers import OUT_OF_MEMORY, SAMPLERS, make_sampler
from autotune.space import sample
from autotune.spec import from_dict

from conftest import tiny_raw

# grid needs a discrete space
DISCRETE = {
    "batch_size": 1024,
    "n_layers": 1,
    "units": [4, 8],
    "learning_rate": [0.01, 0.05],
    "optimizer": "adam",
    "decay": "none",
    "activation": "relu",
    "dropout": 0.0,
    "batchnorm": False,
}
CLASSES = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "qmc": "QMCSampler",
    "gp": "GPSampler",
    "grid": "GridSampler",
}


def spec_for(name: str, **options):
    raw = tiny_raw(sampler=name, sampler_options=options)
    if name == "grid":
        raw["space"] = DISCRETE
    return from_dict(raw)


def search(spec, n_trials: int) -> optuna.Study:
    """A real sampler over the study's space, driven by the work loop with a stub objective."""
    study = optuna.create_study(
        direction="maximize",
        sampler=make_sampler(spec.sampler, 0, spec.sampler_options, spec.space),
    )
    objective = lambda trial: float(sample(spec.space, trial)["learning_rate"])  # noqa: E731
    runner.work(study, lambda: objective, n_trials=n_trials, echo=None)
    return study


def test_the_registry_and_the_classes_match():
    assert sorted(SAMPLERS) == sorted(CLASSES)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_each_name_builds_its_class_and_searches_the_space(name: str):
    if name == "gp":
        pytest.importorskip("torch", reason="the gp sampler needs PyTorch (the [gp] extra)")
    spec = spec_for(name)
    study = search(spec, 4)
    assert isinstance(study.sampler, getattr(optuna.samplers, CLASSES[name]))
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 4
    for trial in study.trials:
        assert 0.01 <= trial.params["learning_rate"] <= 0.1 or name == "grid"


def test_the_grid_sampler_visits_every_point_of_the_grid_once():
    study = search(spec_for("grid"), 4)
    points = {(t.params["units"], t.params["learning_rate"]) for t in study.trials}
    assert points == {(4, 0.01), (4, 0.05), (8, 0.01), (8, 0.05)}


def test_options_reach_the_sampler_and_the_seed_fixes_its_choices():
    spec = spec_for("tpe", n_startup_trials=2)
    sampler = make_sampler("tpe", 7, spec.sampler_options, spec.space)
    assert sampler._n_startup_trials == 2
    first, second = (search(spec, 3) for _ in range(2))
    assert [t.params for t in first.trials] == [t.params for t in second.trials]


def test_grid_on_a_continuous_space_is_refused_when_the_study_file_loads():
    with pytest.raises(
        StudySpecError,
        match=r"^s.toml: The grid sampler needs a discrete space, but 'learning_rate' is continuous",
    ):
        from_dict(tiny_raw(sampler="grid"), source="s.toml")


def test_an_unknown_sampler_option_is_refused_when_the_study_file_loads():
    with pytest.raises(
        StudySpecError, match=r"^s.toml: sampler_options do not fit the tpe sampler: .*n_startup"
    ):
        from_dict(tiny_raw(sampler_options={"n_startup": 3}), source="s.toml")


def out_of_memory_above(limit: int):
    """A stub training whose configurations run out of memory past ``limit`` batch * units,
    and whose best configurations lie well inside it."""

    def objective(trial: optuna.Trial) -> float:
        batch = trial.suggest_int("batch_size", 16, 4096, log=True)
        units = trial.suggest_int("units", 4, 256, log=True)
        if batch * units > limit:
            raise TrialOutOfMemory(f"out of memory at batch_size={batch} units={units}")
        return -((math.log2(batch) - 7) ** 2) - (math.log2(units) - 5) ** 2

    return objective


def oom_trials(sampler: optuna.samplers.BaseSampler) -> list[optuna.trial.FrozenTrial]:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    try:
        runner.work(study, lambda: out_of_memory_above(32 * 1024), n_trials=40, echo=None)
    except SearchFailedError:
        pass
    return [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]


def test_out_of_memory_trials_are_infeasible_and_tpe_proposes_fewer_of_them():
    plain = [oom_trials(optuna.samplers.TPESampler(seed=seed)) for seed in range(6)]
    seen = [oom_trials(make_sampler("tpe", seed, {}, {})) for seed in range(6)]
    for trials in plain + seen:
        assert all(t.constraints == {OUT_OF_MEMORY: 1.0} for t in trials)
        assert all(t.user_attrs["stop_reason"] == "oom" for t in trials)
    # Over the same seeds (scripts/bench_oom.py measures it over 20: about half as many).
    assert sum(map(len, seen)) < sum(map(len, plain))
