"""Files a command writes: never one it was not asked to, never the storage, never half of one."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from autotune import files
from autotune.cli import cli
from autotune.errors import OutputError
from autotune.spec import from_dict
from autotune.study import open_study

from conftest import tiny_raw


def test_an_existing_file_is_replaced_only_with_force(tmp_path: Path):
    target = tmp_path / "report.html"
    target.write_text("old")
    with pytest.raises(
        OutputError,
        match=r"report.html exists already. Use --force to replace it, or choose another\.$",
    ):
        files.check_target(target, force=False)
    assert files.check_target(target, force=True) == target


@pytest.mark.parametrize("name", ["studies.db", "studies.db-wal", "studies.db-shm"])
def test_the_storage_file_is_never_a_target_even_with_force(tmp_path: Path, name: str):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    with pytest.raises(
        OutputError,
        match=r"is the study storage itself; writing there would destroy every study in it",
    ):
        files.check_target(tmp_path / name, force=True, storage=url)


def test_a_full_disk_leaves_the_old_file_whole_and_no_scraps(tiny_disk: Path):
    target = tiny_disk / "report.html"
    target.write_text("x" * 20_000)
    with pytest.raises(
        OutputError, match=r"^Cannot write .*report.html: No space left on device\.$"
    ):
        files.write_text(target, "y" * 200_000)
    assert target.read_text() == "x" * 20_000
    assert os.listdir(tiny_disk) == ["report.html"]


def test_a_folder_appears_whole_or_not_at_all(tmp_path: Path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), files.new_folder(target) as folder:
        (folder / "model.keras").write_text("half")
        raise RuntimeError("the save failed")
    assert not target.exists() and os.listdir(tmp_path) == []
    target.mkdir()
    (target / "old.txt").write_text("old")
    with files.new_folder(target) as folder:
        (folder / "model.keras").write_text("new")
    assert sorted(os.listdir(target)) == ["model.keras"]
    assert os.listdir(tmp_path) == ["model"]


@pytest.fixture
def stored(sqlite_url: str) -> str:
    """A study with two complete trials (no training needed to read it)."""
    study = open_study(from_dict(tiny_raw()), sqlite_url)
    for value in (0.4, 0.8):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        study.tell(trial, value)
    return sqlite_url


def test_trials_never_writes_onto_the_storage(stored: str, workdir: Path):
    before = (workdir / "studies.db").read_bytes()
    result = CliRunner().invoke(cli, ["trials", "--study", "tiny", "--storage", stored,
                                      "--out", "studies.db", "--force"])  # fmt: skip
    assert result.exit_code == 1
    assert result.output == (
        "Error: studies.db is the study storage itself; writing there would destroy every"
        " study in it. Choose another file.\n"
    )
    assert (workdir / "studies.db").read_bytes() == before
    assert len(optuna.load_study(study_name="tiny", storage=stored).trials) == 2


@pytest.mark.parametrize(
    "command, target",
    [
        (["report"], "tiny-report.html"),
        (["trials", "--out", "t.csv"], "t.csv"),
        (["best", "--export", "model"], "model"),  # refused before any retraining
    ],
)
def test_commands_refuse_an_existing_target_without_force(
    stored: str, workdir: Path, command, target
):
    if target == "model":
        (workdir / "model").mkdir()
        (workdir / "model" / "mine.txt").write_text("mine")
    else:
        (workdir / target).write_text("mine")
    result = CliRunner().invoke(
        cli, [command[0], "--study", "tiny", "--storage", stored, *command[1:]]
    )
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {target} exists already. Use --force to replace it, or choose another.\n"
    )
    kept = workdir / target / "mine.txt" if target == "model" else workdir / target
    assert kept.read_text() == "mine"


def test_trials_with_force_replaces_the_file(stored: str, workdir: Path):
    (workdir / "t.csv").write_text("mine")
    result = CliRunner().invoke(cli, ["trials", "--study", "tiny", "--storage", stored,
                                      "--out", "t.csv", "--force"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (workdir / "t.csv").read_text().startswith("number,state,value")


def test_a_report_named_after_any_study_stays_in_the_current_folder(sqlite_url: str, workdir: Path):
    # A study made by plain Optuna may have a name autotune would refuse.
    study = optuna.create_study(study_name="../../x", storage=sqlite_url)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study.tell(trial, 0.5)
    result = CliRunner().invoke(cli, ["report", "--study", "../../x", "--storage", sqlite_url])
    assert result.exit_code == 0, result.output
    written = {p.name for p in workdir.iterdir()} - {
        "studies.db",
        "studies.db-wal",
        "studies.db-shm",
    }
    assert written == {".._.._x-report.html"}
    assert not (workdir.parent.parent / "x-report.html").exists()
