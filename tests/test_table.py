"""``autotune export``: a study's trials as CSV or JSON."""

import csv
import io
import json

import optuna
from click.testing import CliRunner

from autotune import table
from autotune.cli import cli


def invoke(*args: str) -> "object":
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_csv_goes_to_stdout_with_a_column_per_param(finished_study: str):
    result = invoke("trials", "--study", "tiny", "--storage", finished_study, "--format", "csv")
    assert result.exit_code == 0
    table = list(csv.DictReader(io.StringIO(result.output)))
    trials = optuna.load_study(study_name="tiny", storage=finished_study).trials
    names = {name: None for t in trials for name in t.params}  # in the order first seen
    assert result.output.splitlines()[0].split(",") == [
        "number", "state", "value", *(f"params_{name}" for name in names), "epochs",
        "stop_reason", "seconds", "datetime_start", "datetime_complete", "duration",
    ]  # fmt: skip
    assert [row["number"] for row in table] == ["0", "1"]
    for row, trial in zip(table, trials, strict=False):
        assert row["state"] == trial.state.name
        assert float(row["value"]) == trial.value
        assert float(row["params_learning_rate"]) == trial.params["learning_rate"]
        assert row["params_batchnorm"] == str(trial.params["batchnorm"])
        assert int(row["epochs"]) == trial.user_attrs["epochs"]
        assert row["stop_reason"] == trial.user_attrs["stop_reason"]
        assert row["datetime_start"] == trial.datetime_start.isoformat()


def test_json_to_a_file(finished_study: str, tmp_path):
    out = tmp_path / "trials.json"
    result = invoke(
        "trials",
        "--study",
        "tiny",
        "--storage",
        finished_study,
        "--format",
        "json",
        "--out",
        str(out),
    )
    assert result.output == f"Wrote 2 trials of study 'tiny' to {out} (json).\n"
    rows = json.loads(out.read_text())
    trials = optuna.load_study(study_name="tiny", storage=finished_study).trials
    assert [list(row) for row in rows] == [list(table.COLUMNS)] * 2
    for row, trial in zip(rows, trials, strict=False):
        assert row["params"] == trial.params
        assert row["seconds"] == trial.user_attrs["seconds"]
        assert row["duration"] == (trial.datetime_complete - trial.datetime_start).total_seconds()
        assert row["datetime_complete"] == trial.datetime_complete.isoformat()


def test_unfinished_and_waiting_trials_have_empty_cells():
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    study.enqueue_trial({"y": 2})
    rows = list(table.rows(study))
    assert rows[1] == {
        "number": 1,
        "state": "WAITING",
        "value": None,
        "params": {},
        "epochs": None,
        "stop_reason": None,
        "seconds": None,
        "datetime_start": None,
        "datetime_complete": None,
        "duration": None,
    }
    lines = "".join(table.to_csv(study)).splitlines()
    assert lines[0] == (
        "number,state,value,params_x,epochs,stop_reason,seconds,datetime_start,"
        "datetime_complete,duration"
    )
    assert lines[2] == "1,WAITING,,,,,,,,"


def test_an_unknown_format_is_clicks_choice_error(finished_study: str):
    result = invoke("trials", "--study", "tiny", "--storage", finished_study, "--format", "xlsx")
    assert result.exit_code == 2
    assert "'xlsx' is not one of 'csv', 'json'" in result.output


def test_an_unknown_study_is_one_line(finished_study: str):
    result = invoke("trials", "--study", "nope", "--storage", finished_study)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: No study 'nope' in {finished_study}; it holds: tiny. Create it with"
        " `autotune run --study nope`.\n"
    )
