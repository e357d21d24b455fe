"""The examples/ folder, used as a user would: a study file, a CSV and a model.py of their own."""

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from autotune.cli import cli

EXAMPLE = Path(__file__).parent.parent / "examples" / "churn"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def churn(workdir: Path) -> Path:
    """A copy of the churn example in its own folder; the tests run from another one."""
    folder = workdir / "churn"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (workdir / "elsewhere").mkdir()
    return folder


def test_the_example_runs_shows_and_resumes(churn: Path, workdir: Path, monkeypatch):
    monkeypatch.chdir(workdir / "elsewhere")
    study = str(churn / "churn.toml")
    storage = f"sqlite:///{workdir / 'churn.db'}"
    first = invoke(
        "run", "--study", study, "--storage", storage, "--n-trials", "1", "--max-epochs", "2"
    )
    assert first.exit_code == 0, first.output
    assert "Study 'churn': 1 of 1 trials finished" in first.output
    assert "Best val_accuracy:" in first.output

    shown = invoke("show", "--study", study, "--storage", storage)
    assert shown.exit_code == 0, shown.output
    assert "Study 'churn' in" in shown.output and "1 trials (" in shown.output
    assert "units=" in shown.output and "contract" not in shown.output

    again = invoke(
        "run", "--study", study, "--storage", storage, "--n-trials", "2", "--max-epochs", "2"
    )
    assert again.exit_code == 0, again.output
    assert [line[:9] for line in again.output.splitlines() if line.startswith("trial")] == [
        "trial   1"
    ]
    assert "Study 'churn': 2 of 2 trials finished" in again.output


@pytest.mark.parametrize(
    "file, old, new, message",
    [
        (
            "churn.toml",
            'model = "model.py:build"',
            'model = "model.py:built"',
            "model 'model.py:built': model.py has no 'built'; it defines build. Fix the name after the colon.",
        ),
        (
            "churn.toml",
            'target = "churned"',
            'target = "churn"',
            "churn.csv: no target column 'churn'; the columns are: customer_id, tenure_months,",
        ),
        (
            "churn.toml",
            "patience = 8",
            "patience = 8\npatients = 3",
            "[early_stopping] has unknown key(s) patients; allowed: min_delta, patience.",
        ),
        (
            "churn.csv",
            "C0002,30,22.56",
            "C0002,,22.56",
            "churn.csv: column 'tenure_months' has 1 missing value(s) (line 3: ''). Fill them in,",
        ),
        (
            "model.py",
            'return keras.Model(inputs, outputs, name="funnel")',
            "return outputs",
            "model 'model.py:build' returned KerasTensor, not a keras.Model. Make it return the model",
        ),
        (
            "model.py",
            '"n_layers": {"low": 1, "high": 3}',
            '"n_layers": {"low": 1, "hi": 3}',
            "model 'model.py:build': SPACE 'n_layers' has unknown key(s) hi; allowed: choices, high,",
        ),
    ],
)
def test_every_mistake_in_the_three_files_is_one_line_and_exit_1(
    churn: Path, file, old, new, message
):
    path = churn / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    result = invoke(
        "run", "--study", str(churn / "churn.toml"), "--n-trials", "1", "--max-epochs", "1"
    )
    assert result.exit_code == 1
    # At most the run's heading, then the one line of the error.
    lines = result.output.splitlines()
    assert len(lines) <= 2 and lines[-1].startswith("Error: "), result.output
    assert message in lines[-1]
