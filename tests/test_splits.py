"""A search on the user's own splits: real Keras training on train.csv, scored on test.csv."""

from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from autotune import runner
from autotune.cli import cli
from autotune.data import load
from autotune.errors import StudyMismatchError
from autotune.spec import from_dict

from conftest import nothing_stored, tiny_raw, to_toml

COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
DATA = {
    "source": "csv",
    "train": "train.csv",
    "test": "test.csv",
    "target": "kind",
    "task": "classification",
}


def write_split(path: Path, n: int, seed: int) -> list[str]:
    """A CSV of a user's kind (numbers, a text category, a class); returns its lines."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = ["size,district,kind"]
    for i in range(n):
        size, district = rng.uniform(30, 150), ["north", "south", "east"][i % 3]
        lines.append(f"{size:.1f},{district},{'big' if size > 90 else 'small'}")
    path.write_text("\n".join(lines) + "\n")
    return lines


def test_a_study_on_split_files_scores_the_users_test_rows_and_refuses_a_changed_file(
    workdir: Path, sqlite_url: str
):
    write_split(workdir / "train.csv", 120, seed=0)
    test_lines = write_split(workdir / "test.csv", 30, seed=1)
    spec = from_dict(
        tiny_raw(n_trials=2, max_epochs=2, data=DATA), source=str(workdir / "tiny.toml")
    )
    study = runner.run(spec, storage=sqlite_url, echo=None)
    assert len(study.get_trials(states=COUNTED)) == 2

    dataset = load(spec.data, spec.folder)
    # validation is taken from train; test is exactly the user's rows, in their order
    assert dataset.sizes() == {"train": 96, "validation": 24, "test": 30}
    assert list(dataset.rows["test"]) == list(range(30))
    assert [dataset.classes[i] for i in dataset.y_test] == [
        line.split(",")[2] for line in test_lines[1:]
    ]

    with (workdir / "train.csv").open("a") as f:
        f.write("99.0,north,big\n")
    with pytest.raises(StudyMismatchError) as info:
        runner.run(spec.with_overrides(n_trials=4), storage=sqlite_url, echo=None)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "Study 'tiny' in sqlite:///" + str(workdir / "studies.db") + " was searched with"
        " another data (the contents of train.csv changed); its trials cannot be mixed"
    )
    assert len(optuna.load_study(study_name="tiny", storage=sqlite_url).trials) == 2


def test_a_missing_split_file_is_one_line_exit_1_and_nothing_stored(workdir: Path, sqlite_url: str):
    write_split(workdir / "train.csv", 120, seed=0)
    path = workdir / "tiny.toml"
    path.write_text(to_toml(tiny_raw(data=DATA)))
    result = CliRunner().invoke(cli, ["run", "--study", str(path), "--storage", sqlite_url])
    assert result.exit_code == 1
    # the study's header line, then the error in one line
    header, error = result.output.splitlines()
    assert header.startswith("Study 'tiny' (")
    assert error == (
        f"Error: {path}: [data] test: no file {workdir / 'test.csv'}. Fix the path; a relative"
        f" one starts at the study file's folder."
    )
    assert nothing_stored(sqlite_url)
