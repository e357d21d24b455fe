"""A worker's bounded view of its study (autotune.history): which trials the window holds, that
a database's incrementally kept window equals the one cut from the whole study, that a study
below the window's size is searched exactly as through Optuna's own storage, and that a long
study's sampler reads a bounded number of trials."""

from __future__ import annotations

import random

import optuna
import pytest

from autotune import history, runner
from autotune import study as study_module
from autotune.samplers import make_sampler
from autotune.space import build_space, sample

State = optuna.trial.TrialState


def numbers(trials):
    return [t.number for t in trials]


def filled(storage=None, n=60, seed=0, name="h") -> optuna.Study:
    """A study of ``n`` trials in every state, values drawn at random."""
    rng = random.Random(seed)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=seed))  # fmt: skip
    for _ in range(n):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.report(rng.random(), 0)
        roll = rng.random()
        if roll < 0.5:
            study.tell(trial, rng.random())
        elif roll < 0.8:
            study.tell(trial, state=State.PRUNED)
        elif roll < 0.9:
            study.tell(trial, state=State.FAIL)
        # else: left running
    return study


def test_the_window_holds_the_unfinished_the_recent_and_the_best_trials():
    study = filled(n=80)
    trials = study.get_trials(deepcopy=False)
    cut = history.window(trials, maximize=True, recent=10, best=5)
    finished = [t for t in trials if t.state.is_finished()]
    complete = [t for t in trials if t.state == State.COMPLETE]
    best = sorted(complete, key=lambda t: (-t.value, t.number))[:5]
    expected = (
        {t.number for t in trials if t.state == State.RUNNING}
        | {t.number for t in finished[-10:]}
        | {t.number for t in best}
    )
    assert numbers(cut) == sorted(expected)
    assert len(cut) < len(trials)
    # a study shorter than the window is the window
    assert numbers(history.window(trials, maximize=True, recent=1000)) == numbers(trials)


def test_the_windowed_storage_answers_with_the_window_and_passes_the_rest_on():
    study = filled(n=80)
    whole = study.get_trials(deepcopy=False)
    history.through_window(study, recent=10, best=5)
    seen = study.get_trials(deepcopy=False)
    assert numbers(seen) == numbers(history.window(whole, True, 10, 5))
    # single reads, the best trial and writes go to the storage itself
    assert (
        study.best_trial.number
        == max((t for t in whole if t.state == State.COMPLETE), key=lambda t: t.value).number
    )
    assert study_module.trial_by_number(study, 0).number == 0
    assert len(study_module.all_trials(study)) == 80
    assert study_module.counts(study).total == 80


@pytest.mark.parametrize("recent,best", [(10, 5), (25, 3), (1000, 25)])
def test_a_database_window_kept_by_what_changed_equals_the_window_of_the_whole_study(
    tmp_path, recent, best
):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    study = filled(url, n=40, seed=1)
    optuna.create_study(study_name="other", storage=url)  # trials of another study stay out
    history.through_window(study, recent=recent, best=best)
    rng = random.Random(2)
    whole = optuna.load_study(study_name="h", storage=url)
    for round_ in range(6):
        # other trials end, new ones start and end, some stay running
        for trial in study_module.all_trials(study):
            if trial.state == State.RUNNING and rng.random() < 0.5:
                study.tell(trial.number, rng.random())
        for _ in range(rng.randint(1, 15)):
            trial = study.ask()
            trial.suggest_float("x", 0, 1)
            roll = rng.random()
            if roll < 0.4:
                study.tell(trial, rng.random())
            elif roll < 0.7:
                study.tell(trial, state=State.PRUNED)
        study._storage._written = True  # as after a write of its own
        expected = history.window(whole.get_trials(deepcopy=False), True, recent, best)
        got = study.get_trials(deepcopy=False)
        assert numbers(got) == numbers(expected), f"round {round_}"
        assert [t.state for t in got] == [t.state for t in expected]
        complete = whole.get_trials(deepcopy=False, states=(State.COMPLETE,))
        top = sorted(complete, key=lambda t: (-t.value, t.number))[:best]
        assert numbers(study._storage.best_trials(study._study_id, best)) == numbers(top)
        assert study.best_trial.number == top[0].number
        assert numbers(study_module.ranked(study, 3)) == numbers(top[:3])


def test_a_study_shorter_than_the_window_is_searched_exactly_as_without_it():
    space = build_space({"lr": {"low": 1e-4, "high": 1e-1, "log": True},
                         "units": {"low": 8, "high": 128, "step": 8},
                         "opt": {"choices": ["adam", "sgd"]}})  # fmt: skip

    def objective(trial: optuna.Trial) -> float:
        params = sample(space, trial)
        return -abs(params["lr"] - 0.01) - params["units"] / 1000

    runs = []
    for through in (False, True):
        study = optuna.create_study(direction="maximize",
                                    sampler=make_sampler("tpe", 3, {}, space))  # fmt: skip
        if through:
            history.through_window(study)
        study.optimize(objective, n_trials=25)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]


def test_a_long_study_s_sampler_reads_a_bounded_number_of_trials():
    study = filled(n=300, seed=3)
    for trial in study.get_trials(deepcopy=False):
        if trial.state == State.RUNNING:
            study.tell(trial.number, state=State.FAIL)
    read: list[int] = []

    class Counting(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, distribution):
            read.append(len(study.get_trials(deepcopy=False)))
            return super().sample_independent(study, trial, name, distribution)

    study.sampler = Counting(seed=0)
    history.through_window(study, recent=50, best=10)

    def objective(trial: optuna.Trial) -> float:
        return trial.suggest_float("x", 0, 1)

    total = study_module.counts(study).finished + 100
    runner.work(study, lambda: objective, n_trials=total, echo=None)
    assert study_module.counts(study).finished == total
    assert len(read) == 100 and max(read) <= 50 + 10 + 1


def test_show_of_a_long_study_lists_its_best_and_latest_and_all_pages_through_every_trial(
    tmp_path,
):
    from autotune import console

    url = f"sqlite:///{tmp_path / 'h.db'}"
    study = filled(url, n=120, seed=4)
    lines = list(console.show(study, url))
    rows = [line for line in lines if line[:4].strip().isdigit()]
    complete = [t for t in study.get_trials() if t.state == State.COMPLETE]
    best = sorted(complete, key=lambda t: (-t.value, t.number))[:10]
    assert [int(r.split()[0]) for r in rows] == [t.number for t in best] + list(range(100, 120))
    assert lines[0].startswith(f"Study 'h' in {url}: 120 trials (")
    assert "(100 earlier trials not listed: autotune show --study h --all)" in lines
    every = list(console.show(study, url, every=True))
    listed = [int(line.split()[0]) for line in every if line[:4].strip().isdigit()]
    assert listed == list(range(120))
    assert every[-2] == f"Best value: {best[0].value:.4f} (trial {best[0].number})"
    from autotune.study import pages

    paged = list(pages(study, size=7))
    assert len(paged) == 18 and [t.number for p in paged for t in p] == list(range(120))


@pytest.mark.parametrize("n", [0, 1, 45])
def test_the_streamed_table_is_the_table_written_whole(tmp_path, n):
    import csv
    import io
    import json

    from autotune import table

    url = f"sqlite:///{tmp_path / 'h.db'}"
    study = filled(url, n=n, seed=5)
    pieces = list(table.to_json(study))
    whole = [table._row(t) for t in study.get_trials()]
    assert "".join(pieces) == json.dumps(whole, indent=2) + "\n"
    read = list(csv.DictReader(io.StringIO("".join(table.to_csv(study)))))
    assert [int(r["number"]) for r in read] == list(range(n))
    trials = study.get_trials()
    assert all(r["params_x"] == repr(t.params["x"]) for r, t in zip(read, trials, strict=True))
