"""Warm start: the best configurations of another study, queued once, those that fit."""

import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner

from autotune import spec as spec_module
from autotune import warmstart
from autotune.cli import cli
from autotune.errors import AutotuneError
from autotune.space import build_space, sample

from conftest import TINY_SPACE, tiny_raw

# The source's configurations, best first: units and the value its trial reached.
SOURCE = [(16, 0.9), (6, 0.8), (8, 0.7), (5, 0.6)]


def make_source(url: str) -> optuna.Study:
    """Study 'src': four complete trials of the tiny space with the units above."""
    space = spec_module.from_dict(tiny_raw("src")).space
    source = optuna.create_study(
        study_name="src",
        storage=url,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    for units, value in SOURCE:
        source.enqueue_trial({"units": units})
        source.optimize(lambda trial, v=value: (sample(space, trial), v)[1], n_trials=1)
    return source


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_run_queues_the_best_that_fit_and_never_twice(write_study, sqlite_url: str):
    source = make_source(sqlite_url)
    narrow = {**TINY_SPACE, "units": {"low": 4, "high": 8}}
    path = write_study(n_trials=2, max_epochs=1, space=narrow)
    result = invoke(
        "run", "--study", str(path), "--storage", sqlite_url, "--warm-start", "src", "--top", "3"
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:3] == [
        "Warm start from 'src': queued 2 of its best 3 trials (#1, #2).",
        "  skipped trial #0: units=16 is outside [4, 8] log",
    ]
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    assert [t.user_attrs.get("warm_start") for t in trials] == ["src#1", "src#2"]
    assert [t.params for t in trials] == [source.trials[1].params, source.trials[2].params]
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]

    # What a resume with the same warm start does first: nothing is queued again.
    target = optuna.load_study(study_name="tiny", storage=sqlite_url)
    again = warmstart.warm_start(target, spec_module.load(path).space, "src", top=3)
    assert again.lines() == [
        "Warm start from 'src': queued 0 of its best 3 trials.",
        "  skipped trial #0: units=16 is outside [4, 8] log",
        "  skipped trial #1: already in this study",
        "  skipped trial #2: already in this study",
    ]
    assert len(target.trials) == 2


def test_queued_but_not_yet_run_configurations_are_not_queued_twice():
    storage = optuna.storages.InMemoryStorage()
    source = optuna.create_study(study_name="src", storage=storage)
    source.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    target = optuna.create_study(study_name="dst", storage=storage)
    space = build_space({"x": {"low": 0.0, "high": 1.0}})
    best_first = [t.number for t in sorted(source.trials, key=lambda t: t.value)]
    assert warmstart.warm_start(target, space, "src").enqueued == best_first
    again = warmstart.warm_start(target, space, "src")
    assert again.enqueued == [] and len(again.skipped) == 2
    assert [t.state.name for t in target.trials] == ["WAITING", "WAITING"]


def test_only_the_params_the_space_uses_are_queued():
    storage = optuna.storages.InMemoryStorage()
    source = optuna.create_study(study_name="src", storage=storage, direction="minimize")
    for optimizer, value in (("momentum", 0.1), ("adam", 0.2)):
        source.enqueue_trial({"optimizer": optimizer, "momentum": 0.9, "x": 1})
        source.optimize(
            lambda t, v=value: (
                t.suggest_categorical("optimizer", ["adam", "momentum"]),
                t.suggest_float("momentum", 0.5, 0.99),
                t.suggest_int("x", 0, 2),
                v,
            )[-1],
            n_trials=1,
        )
    target = optuna.create_study(study_name="dst", storage=storage)
    space = build_space({
        "optimizer": {"choices": ["adam"]},
        "momentum": {"low": 0.5, "high": 0.99, "when": {"optimizer": ["momentum"]}},
    })  # fmt: skip
    started = warmstart.warm_start(target, space, "src", top=5)
    assert started.lines() == [
        "Warm start from 'src': queued 1 of its best 2 trials (#1).",
        "  skipped trial #0: optimizer='momentum' is outside {adam}",
    ]
    assert target.trials[0].state.name == "WAITING"
    assert target.trials[0].system_attrs["fixed_params"] == {"optimizer": "adam"}


@pytest.mark.parametrize(
    ("source", "top", "message"),
    [
        ("nope", 5, "Cannot warm-start from 'nope': no such study in this storage; it holds: dst."),
        ("dst", 5, "Study 'dst' cannot warm-start from itself; name another study in the storage."),
        ("dst", 0, "top must be at least 1, but got 0."),
    ],
)
def test_bad_sources_are_refused(source: str, top: int, message: str):
    target = optuna.create_study(study_name="dst", storage=optuna.storages.InMemoryStorage())
    with pytest.raises(AutotuneError, match=f"^{re.escape(message)}$"):
        warmstart.warm_start(target, build_space({"x": {"low": 0, "high": 1}}), source, top=top)


def test_a_source_without_complete_trials_queues_nothing():
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(study_name="src", storage=storage)
    target = optuna.create_study(study_name="dst", storage=storage)
    started = warmstart.warm_start(target, build_space({"x": {"low": 0, "high": 1}}), "src")
    assert started.lines() == ["Warm start from 'src': it has no complete trial; nothing queued."]


def test_top_needs_warm_start(workdir: Path):
    result = invoke("run", "--study", "circles", "--top", "3")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == "Error: --top needs --warm-start OTHER_STUDY."
    assert not (workdir / "autotune.db").exists()
