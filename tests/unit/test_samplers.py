"""Samplers by name: each is the Optuna class it names, seeded and with the study file's
options, and each drives autotune's own work loop over the study's real space."""

import math

import numpy as np
import optuna
import pytest
from scipy.stats import qmc

from autotune import runner
from autotune import study as study_module
from autotune.errors import SearchFailedError, StudySpecError, TrialOutOfMemory
from autotune.samplers import (
    OUT_OF_MEMORY,
    SAMPLERS,
    Plan,
    SobolStart,
    at,
    make_sampler,
    startup_trials,
)
from autotune.space import build_space, sample
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


# The tpe sampler's start-up design: a scrambled Sobol sequence, trial k at point k.

UNIT = build_space({f"x{i}": {"low": 0.0, "high": 1.0} for i in range(4)})
KINDS = build_space(
    {
        "rate": {"low": 1e-4, "high": 1.0, "log": True},
        "units": {"low": 4, "high": 512, "log": True},
        "width": {"low": 0, "high": 70, "step": 10},
        "ratio": {"low": 0.0, "high": 0.7, "step": 0.1},
        "kind": {"choices": ["a", "b", "c", "d"]},
        "fixed": 0.5,
    }
)
CONDITIONAL = build_space(
    {
        "optimizer": {"choices": ["sgd", "momentum"]},
        "momentum": {"low": 0.5, "high": 0.99, "when": {"optimizer": ["momentum"]}},
        "late": {"low": 0.0, "high": 1.0},
        "never": {"low": 0.0, "high": 1.0, "when": {"fixed": ["other"]}},
        "fixed": "only",
    }
)


def asked(sampler, space, n: int, study: optuna.Study | None = None) -> optuna.Study:
    """``n`` trials of ``space`` from ``sampler``; each one's value is its first parameter."""
    study = study or optuna.create_study(sampler=sampler)
    for _ in range(n):
        trial = study.ask()
        params = sample(space, trial)
        study.tell(trial, float(hash(repr(params)) % 1000))
    return study


def tpe(space, seed: int, **options):
    return make_sampler("tpe", seed, {"n_startup_trials": 8, **options}, space)


def unit_points(study: optuna.Study, space) -> np.ndarray:
    return np.array([[t.params[name] for name in space] for t in study.trials])


def one_point_per_bin(values, bins: int) -> bool:
    return sorted(np.floor(np.asarray(values) * bins).astype(int)) == list(range(bins))


def test_the_sobol_start_puts_one_point_in_each_eighth_of_every_range_and_random_does_not():
    sobol, random = [], []
    for seed in range(10):
        sobol.append(unit_points(asked(tpe(UNIT, seed), UNIT, 8), UNIT))
        random.append(unit_points(asked(tpe(UNIT, seed, startup="random"), UNIT, 8), UNIT))
    assert all(one_point_per_bin(p[:, d], 8) for p in sobol for d in range(4))
    # Independent draws land one per bin with probability 8!/8**8 (0.24%).
    assert not any(one_point_per_bin(p[:, d], 8) for p in random for d in range(4))
    # And the 8 points cover the cube more evenly (centered L2 discrepancy), in every seed.
    assert all(qmc.discrepancy(s) < qmc.discrepancy(r) for s, r in zip(sobol, random, strict=True))


def test_the_start_is_the_same_for_a_seed_and_another_for_another_seed():
    first, again, other = (asked(tpe(KINDS, seed), KINDS, 8) for seed in (3, 3, 4))
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    assert [t.params for t in first.trials] != [t.params for t in other.trials]


def test_the_start_keeps_log_scales_whole_numbers_steps_and_choices_in_equal_bins():
    for seed in range(5):
        trials = asked(tpe(KINDS, seed), KINDS, 8).trials
        rate = [t.params["rate"] for t in trials]
        units = [t.params["units"] for t in trials]
        assert one_point_per_bin(
            [(math.log(r) - math.log(1e-4)) / -math.log(1e-4) for r in rate], 8
        )
        assert all(type(u) is int and 4 <= u <= 512 for u in units)
        # On a log scale, as Optuna maps an int: [3.5, 512.5], rounded, half below the
        # geometric middle (42.4).
        assert sum(u <= 42 for u in units) == 4
        # Eight values, eight points: each value once.
        assert sorted(t.params["width"] for t in trials) == list(range(0, 80, 10))
        assert sorted(round(t.params["ratio"], 9) for t in trials) == [i / 10 for i in range(8)]
        kinds = [t.params["kind"] for t in trials]
        assert sorted(kinds) == ["a", "a", "b", "b", "c", "c", "d", "d"]
        assert all(t.params["fixed"] == 0.5 for t in trials)


def design_value(sampler, trial: optuna.trial.FrozenTrial, name: str):
    start = sampler._random_sampler
    distribution = trial.distributions[name]
    return at(float(start.point(trial.number)[start.dimensions[name]]), distribution)


def test_a_conditional_parameter_reads_its_own_dimension_when_it_is_active():
    sampler = tpe(CONDITIONAL, 0)
    # In the space's order (parents first); a fixed or unreachable parameter needs none.
    assert list(CONDITIONAL) == ["optimizer", "late", "fixed", "momentum", "never"]
    assert sampler._random_sampler.dimensions == {"optimizer": 0, "late": 1, "momentum": 2}
    study = asked(sampler, CONDITIONAL, 8)
    active = [t for t in study.trials if "momentum" in t.params]
    assert 0 < len(active) < 8
    for trial in study.trials:
        for name in trial.params:
            if name != "fixed":
                assert trial.params[name] == design_value(sampler, trial, name)
    # Whether momentum is there or not, late keeps its dimension: one point in each eighth.
    assert one_point_per_bin([t.params["late"] for t in study.trials], 8)


def test_tpe_takes_over_after_the_start_up_and_a_failed_trial_does_not_count():
    sampler = tpe(UNIT, 0, n_startup_trials=4)
    study = optuna.create_study(sampler=sampler)
    failed = study.ask()
    sample(UNIT, failed)
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    asked(sampler, UNIT, 5, study)
    trials = study.trials
    # TPE's own rule: 4 complete or pruned trials, then the model; the failed trial 0 took
    # point 0, and trials 1 to 4 took points 1 to 4.
    for trial in [failed, *trials[1:5]]:
        assert all(trial.params[x] == design_value(sampler, trial, x) for x in UNIT)
    assert all(trials[5].params[x] != design_value(sampler, trials[5], x) for x in UNIT)


def test_workers_with_their_own_sampler_seeds_take_different_points_of_one_design():
    storage = optuna.storages.InMemoryStorage()
    plan = Plan(n_trials=30, seed=7)
    workers = [
        optuna.create_study(
            study_name="shared",
            storage=storage,
            load_if_exists=True,
            sampler=make_sampler("tpe", 7 + index, {"n_startup_trials": 8}, UNIT, plan),
        )
        for index in range(2)
    ]
    for number in range(8):
        asked(None, UNIT, 1, workers[number % 3 % 2])  # out of turn: 0 1 0 0 1 0 0 1
    points = unit_points(workers[0], UNIT)
    alone = unit_points(asked(tpe(UNIT, 7), UNIT, 8), UNIT)
    assert np.array_equal(points, alone)
    assert all(one_point_per_bin(points[:, d], 8) for d in range(4))


@pytest.mark.parametrize(("n_trials", "startup"), [(None, 10), (10, 4), (59, 4), (60, 8), (500, 8)])
def test_the_start_up_is_sized_to_the_study(n_trials, startup):
    assert startup_trials(n_trials) == startup
    sampler = make_sampler("tpe", 0, {}, UNIT, Plan(n_trials=n_trials))
    assert sampler._n_startup_trials == startup
    assert isinstance(sampler._random_sampler, SobolStart)


def test_the_study_file_sets_the_start_up_over_the_default():
    spec = from_dict(
        tiny_raw(n_trials=30, sampler_options={"startup": "random", "n_startup_trials": 10})
    )
    sampler = make_sampler("tpe", 0, spec.sampler_options, spec.space, Plan(n_trials=30))
    assert sampler._n_startup_trials == 10
    assert type(sampler._random_sampler) is optuna.samplers.RandomSampler


def test_a_study_opens_with_the_start_up_of_its_size_and_its_own_design_seed(sqlite_url: str):
    spec = from_dict(tiny_raw(n_trials=80, seed=5))
    study = study_module.open_study(spec, sqlite_url, sampler_seed=6)
    assert study.sampler._n_startup_trials == 8
    assert study.sampler._random_sampler.seed == 5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"startup": "halton"}, r"startup must be one of sobol, random, but got 'halton'\.$"),
        ({"startup": 1}, r"startup must be one of sobol, random, but got 1\.$"),
        ({"n_startup_trials": "ten"}, r"n_startup_trials must be a whole number, 0 or more,"),
    ],
)
def test_a_bad_start_up_option_is_one_line_naming_it(options, message):
    with pytest.raises(StudySpecError, match=r"^s.toml: \[sampler_options\] " + message):
        from_dict(tiny_raw(sampler_options=options), source="s.toml")
