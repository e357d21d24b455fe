"""``autotune report`` on a large study: lean reads, bounded plots, the same sections.

The thresholds are lowered so that a few hundred trials, written straight to an SQLite file,
take the path that a study of 100,000 takes.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import numpy as np
import optuna
import optuna.visualization as vis
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.trial import TrialState

from autotune import report
from autotune.study import ranked

import browser

N_TRIALS = 300
METRIC = "val_accuracy"
SECTIONS = [
    "Optimization history",
    f"Learning curves ({METRIC} per epoch)",
    f"Hyperparameter importances for {METRIC}",
    "Parallel coordinates",
]
DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "units": IntDistribution(8, 128),
    "activation": CategoricalDistribution(["relu", "tanh", "gelu"]),
}


def _trials(n: int, seed: int = 0) -> list[optuna.trial.FrozenTrial]:
    """``n`` trials: about half complete, the others pruned (with their last epoch's value, as
    Optuna stores it) or failed; curves of 1 to 8 epochs, a few with a NaN epoch."""
    rng = random.Random(seed)
    trials = []
    for number in range(n):
        params = {"lr": 10 ** rng.uniform(-4, -1), "units": rng.randint(8, 128),
                  "activation": rng.choice(["relu", "tanh", "gelu"])}  # fmt: skip
        # The value depends on lr and activation, not on units.
        quality = -abs(math.log10(params["lr"]) + 2.5) + (params["activation"] == "gelu")
        curve = {e: 0.5 + 0.05 * quality + 0.02 * e + rng.gauss(0, 0.01)
                 for e in range(rng.randint(1, 8))}  # fmt: skip
        if number % 17 == 0:
            curve[len(curve)] = float("nan")
        finite = [v for v in curve.values() if not math.isnan(v)]
        kind = rng.random()
        if kind < 0.5:
            state, value = TrialState.COMPLETE, max(finite)
        elif kind < 0.9:
            state, value = TrialState.PRUNED, finite[-1]
        else:
            state, value, curve = TrialState.FAIL, None, {}
        trials.append(
            optuna.trial.create_trial(state=state, value=value, params=params,
                                      distributions=DISTRIBUTIONS, intermediate_values=curve)
        )  # fmt: skip
    return trials


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('scale') / 'scale.db'}"
    study = optuna.create_study(study_name="big", storage=url, direction="maximize")
    study.add_trials(_trials(N_TRIALS))
    return url


@pytest.fixture
def big(storage_url: str) -> optuna.Study:
    return optuna.load_study(study_name="big", storage=storage_url)


@pytest.fixture
def bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thresholds that a study of N_TRIALS trials is past."""
    monkeypatch.setattr(report, "LARGE", 100)
    monkeypatch.setattr(report, "CURVES", 5)
    monkeypatch.setattr(report, "SAMPLE", 60)
    monkeypatch.setattr(report, "SAMPLE_BEST", 6)


@pytest.fixture
def no_whole_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails any read of every trial of a study from the storage."""

    def refuse(*args, **kwargs):
        raise AssertionError("every trial was read whole")

    monkeypatch.setattr(RDBStorage, "get_all_trials", refuse)
    monkeypatch.setattr(_CachedStorage, "get_all_trials", refuse)


def _sections(study: optuna.Study) -> dict[str, report.Section]:
    return {s.title: s for s in report.sections(study, METRIC)}


@pytest.mark.usefixtures("bounded")
def test_a_large_report_reads_no_trial_list_and_says_what_each_plot_shows(
    big: optuna.Study, no_whole_reads: None
):
    text = report.build(big, METRIC)
    assert re.findall(r"<h2>(.*?)</h2>", text) == [*SECTIONS, "Best trials"]
    assert text.count("Plotly.newPlot(") == 4
    assert "<script src=" not in text and text.count("plotly.js v") == 1
    assert 'class="note"' not in text
    complete = sum(t.state == TrialState.COMPLETE for t in _trials(N_TRIALS))
    assert re.findall(r'<p class="about">(.*?)</p>', text) == [
        f"Every complete trial&#x27;s value ({complete} of {N_TRIALS} trials), and the best so"
        f" far.",
        f"The best 5 trials&#x27; curves, and per epoch the median and interquartile band of"
        f" all {sum(bool(t.intermediate_values) for t in _trials(N_TRIALS))} trials&#x27;"
        f" values (of those that reached the epoch).",
        f"PED-ANOVA on 60 of the {complete} complete trials (the best 6 and 54 drawn at random"
        f" from the rest, seed 0): how much each parameter matters for reaching the study&#x27;s"
        f" best 6.",
        f"The same 60 of the {complete} complete trials (the best 6 and 54 drawn at random from"
        f" the rest, seed 0).",
    ]


@pytest.mark.services
@pytest.mark.usefixtures("bounded")
def test_a_large_report_draws_offline_in_a_browser(big: optuna.Study, tmp_path: Path, chromium):
    path = report.write(big, tmp_path / "r.html", METRIC)
    errors: list[str] = []
    with browser.page(offline=True) as page:
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=20_000)
        assert page.locator(".js-plotly-plot").count() == 4
        # The history's points are drawn by WebGL.
        page.locator(".js-plotly-plot canvas").first.wait_for(timeout=20_000)
        assert page.get_by_text("WebGL is not supported", exact=False).count() == 0
    assert errors == []


@pytest.mark.usefixtures("bounded")
def test_the_history_holds_every_complete_trial_and_the_best_so_far(big: optuna.Study):
    points, best = _sections(big)["Optimization history"].figure.data
    complete = [t for t in big.trials if t.state == TrialState.COMPLETE]
    assert points.type == "scattergl"
    assert list(points.x) == [t.number for t in complete]
    assert list(points.y) == [t.value for t in complete]
    # A step line through each new best, out to the last trial.
    running = np.maximum.accumulate([t.value for t in complete])
    assert best.line.shape == "hv"
    assert list(best.y) == [*sorted(set(running)), running[-1]]
    assert best.x[-1] == N_TRIALS - 1
    for x, y in zip(best.x[:-1], best.y[:-1], strict=True):
        assert big.trials[x].value == y


@pytest.mark.usefixtures("bounded")
def test_the_curves_are_the_best_trials_over_the_band_of_all(big: optuna.Study):
    shown = _sections(big)[SECTIONS[1]].figure
    upper, lower, median, *curves = shown.data
    best = ranked(big, 5)
    assert [c.name for c in curves] == [f"Trial{t.number}" for t in best]
    for curve, trial in zip(curves, best, strict=True):
        assert list(curve.x) == sorted(trial.intermediate_values)
        np.testing.assert_array_equal(curve.y, [trial.intermediate_values[e] for e in curve.x])
    per_epoch: dict[int, list[float]] = {}
    for trial in big.trials:
        for epoch, value in trial.intermediate_values.items():
            if not math.isnan(value):
                per_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(per_epoch)
    assert list(median.x) == epochs
    assert list(median.customdata) == [len(per_epoch[e]) for e in epochs]
    np.testing.assert_allclose(median.y, [np.median(per_epoch[e]) for e in epochs])
    np.testing.assert_allclose(lower.y, [np.percentile(per_epoch[e], 25) for e in epochs])
    np.testing.assert_allclose(upper.y, [np.percentile(per_epoch[e], 75) for e in epochs])
    assert lower.fill == "tonexty"


@pytest.mark.usefixtures("bounded")
def test_the_sample_is_the_best_and_a_seeded_draw_of_the_complete_trials(big: optuna.Study):
    sample = report.sample(big)
    again = report.sample(big)
    complete = sorted((t.value for t in big.trials if t.state == TrialState.COMPLETE), reverse=True)
    values = sorted((t.value for t in sample.trials), reverse=True)
    assert len(sample.trials) == 60
    assert {t.state for t in sample.trials} == {TrialState.COMPLETE}
    assert values[:6] == complete[:6]
    assert set(values) < set(complete)
    assert [t.params for t in again.trials] == [t.params for t in sample.trials]


@pytest.mark.usefixtures("bounded")
def test_the_importances_are_ped_anova_s_on_the_sample_drawn_as_optuna_draws_them(
    big: optuna.Study, monkeypatch: pytest.MonkeyPatch
):
    sample = report.sample(big)
    expected = optuna.importance.get_param_importances(
        sample, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
    )
    optunas = vis.plot_param_importances(
        sample, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target_name=METRIC
    )
    monkeypatch.setattr(
        optuna.importance.FanovaImportanceEvaluator, "evaluate", lambda *a, **k: 1 / 0
    )
    shown = _sections(big)[SECTIONS[2]].figure
    (bars,) = shown.data
    assert list(bars.y) == list(reversed(expected))
    assert list(bars.x) == [expected[name] for name in bars.y]
    assert shown == optunas
    assert list(expected)[-1] == "units"  # the parameter the value does not depend on
    coordinates = _sections(big)["Parallel coordinates"].figure
    assert coordinates == vis.plot_parallel_coordinate(sample, target_name=METRIC)


def test_a_study_of_all_complete_trials_below_the_sample_is_sampled_whole(
    big: optuna.Study, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(report, "LARGE", 100)
    complete = sum(t.state == TrialState.COMPLETE for t in big.trials)
    monkeypatch.setattr(report, "SAMPLE", complete)
    assert len(report.sample(big).trials) == complete
    abouts = [s.about for s in report.sections(big, METRIC)]
    assert abouts[2] == (
        f"PED-ANOVA on all {complete} complete trials: how much each parameter matters for"
        f" reaching their best 10%."
    )
    assert abouts[3] == f"All {complete} complete trials."


@pytest.mark.usefixtures("bounded")
def test_a_storage_without_a_database_reads_the_same_figures(big: optuna.Study):
    memory = optuna.create_study(study_name="big", direction="maximize")
    memory.add_trials(big.trials)
    on_disk, in_memory = report.columns(big), report.columns(memory)
    for field in ("numbers", "complete", "values"):
        np.testing.assert_array_equal(getattr(on_disk, field), getattr(in_memory, field))
    epochs, values, reporting = report.epoch_values(big)
    epochs_m, values_m, reporting_m = report.epoch_values(memory)
    assert reporting == reporting_m
    assert sorted(zip(epochs, values, strict=True)) == sorted(zip(epochs_m, values_m, strict=True))
    for ours, theirs in zip(report.sections(big, METRIC), report.sections(memory, METRIC),
                            strict=True):  # fmt: skip
        assert ours.about == theirs.about
        assert ours.figure.to_json() == theirs.figure.to_json()  # NaN != NaN in a curve


@pytest.mark.parametrize(("large", "bounded"), [(N_TRIALS, False), (N_TRIALS - 1, True)])
def test_the_threshold_counts_every_trial(
    big: optuna.Study, monkeypatch: pytest.MonkeyPatch, large: int, bounded: bool
):
    monkeypatch.setattr(report, "LARGE", large)
    history = next(report.sections(big, METRIC))
    assert (history.about is not None) == bounded


def test_a_study_up_to_the_threshold_keeps_optuna_s_own_plots(big: optuna.Study):
    assert N_TRIALS <= report.LARGE
    shown = list(report.sections(big, METRIC))
    assert [s.title for s in shown] == SECTIONS
    assert [s.about for s in shown] == [None] * 4
    history, curves, importances, coordinates = (s.figure for s in shown)
    assert history == vis.plot_optimization_history(big, target_name=METRIC)
    # One curve per trial that reported an epoch.
    assert len(curves.data) == sum(bool(t.intermediate_values) for t in big.trials)
    assert importances == vis.plot_param_importances(big, target_name=METRIC)
    assert coordinates == vis.plot_parallel_coordinate(big, target_name=METRIC)
    text = report.build(big, METRIC)
    assert re.findall(r"<h2>(.*?)</h2>", text) == [*SECTIONS, "Best trials"]
    assert 'class="about"' not in text and text.count("Plotly.newPlot(") == 4


def test_an_empty_large_study_still_gets_a_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(report, "LARGE", 2)
    study = optuna.create_study(study_name="failing", storage=f"sqlite:///{tmp_path / 'f.db'}")
    study.add_trials([optuna.trial.create_trial(state=TrialState.FAIL) for _ in range(3)])
    text = report.build(study, METRIC)
    assert re.findall(r"<h2>(.*?)</h2>", text) == [*SECTIONS, "Best trials"]
    notes = re.findall(r'<p class="note">(.*?)</p>', text)
    assert notes == [
        "Hyperparameter importances need at least 2 complete trials; this study has 0. Run"
        " more trials and build the report again.",
        "No trial has completed yet.",
    ]
