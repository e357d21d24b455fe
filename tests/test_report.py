"""``autotune report``: one self-contained HTML file of Optuna's plots and the best trials."""

import re
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from autotune import report
from autotune.cli import cli

import browser

SECTIONS = [
    "Optimization history",
    "Learning curves (val_accuracy per epoch)",
    "Hyperparameter importances for val_accuracy",
    "Parallel coordinates",
    "Best trials",
]


def test_report_holds_the_plots_and_the_best_trials(finished_study: str, workdir: Path):
    result = CliRunner().invoke(
        cli, ["report", "--study", "tiny", "--storage", finished_study], catch_exceptions=False
    )
    path = workdir / "tiny-report.html"
    assert result.output == "Wrote the report of study 'tiny' (2 trials) to tiny-report.html\n"
    text = path.read_text()
    assert re.findall(r"<h2>(.*?)</h2>", text) == SECTIONS
    assert text.count("Plotly.newPlot(") == 4
    assert 'class="note"' not in text
    # plotly.js is inside the file, loaded from nowhere else.
    assert "<script src=" not in text and len(text) > 3_000_000
    study = optuna.load_study(study_name="tiny", storage=finished_study)
    ranked = sorted(study.trials, key=lambda t: t.value, reverse=True)
    rows = re.findall(
        r'<tr><td class="num">(\d+)</td><td class="num">(\d+)</td>'
        r'<td class="num">([\d.]+)</td>',
        text,
    )
    assert rows == [(str(i + 1), str(t.number), f"{t.value:.4f}") for i, t in enumerate(ranked)]


@pytest.mark.services
def test_the_report_draws_offline_in_a_browser(finished_study: str, tmp_path: Path, chromium):
    path = report.write(
        optuna.load_study(study_name="tiny", storage=finished_study),
        tmp_path / "r.html",
        "val_accuracy",
    )
    errors: list[str] = []
    with browser.page(offline=True) as page:
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=20_000)
        assert page.locator(".js-plotly-plot").count() == 4
        assert page.get_by_text("Hyperparameter Importance", exact=True).count() >= 1
    assert errors == []


def _study(params_values: list[tuple[dict, float]]) -> optuna.Study:
    study = optuna.create_study(study_name="hand", direction="maximize")
    for params, value in params_values:
        study.enqueue_trial(params)
        study.optimize(lambda t, v=value: (t.suggest_float("x", 0, 1), v)[1], n_trials=1)
    return study


@pytest.mark.parametrize(
    ("trials", "note"),
    [
        (
            [({"x": 0.5}, 0.7)],
            "Hyperparameter importances need at least 2 complete trials; this study has 1.",
        ),
        ([({"x": 0.5}, 0.7), ({"x": 0.5}, 0.8)], "every complete trial has the same parameters."),
    ],
)
def test_importances_degrade_to_a_note(trials: list, note: str):
    text = report.build(_study(trials), "val_accuracy")
    assert re.findall(r"<h2>(.*?)</h2>", text) == SECTIONS
    notes = re.findall(r'<p class="note">(.*?)</p>', text)
    assert len(notes) == 1 and note in notes[0]
    assert text.count("Plotly.newPlot(") == 3


def test_a_study_without_trials_still_gets_a_report():
    text = report.build(optuna.create_study(study_name="empty"))
    assert "No trial has completed yet." in text
    assert '<p class="summary">No trials yet; value, minimized.</p>' in text
