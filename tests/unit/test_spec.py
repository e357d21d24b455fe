import tomllib
from pathlib import Path

import pytest

from autotune import spec as spec_module
from autotune.errors import StudySpecError

from conftest import FIXTURES, tiny_raw


@pytest.mark.parametrize("name", spec_module.available()["shipped"])
def test_shipped_studies_load(name):
    spec = spec_module.resolve(name)
    assert spec.name == name
    if spec.task == "regression":
        assert spec.direction == "minimize" and spec.metric == "val_mae"
    else:
        assert spec.direction == "maximize" and spec.metric == "val_accuracy"
    assert set(spec.space) >= {
        "learning_rate",
        "batch_size",
        "decay",
        "optimizer",
        "dropout",
        "batchnorm",
        "units",
        "n_layers",
    }


def test_the_shipped_regression_study_needs_no_task_line():
    raw = tomllib.loads(spec_module.find("friedman").read_text())
    assert "task" not in raw["data"]
    spec = spec_module.resolve("friedman")
    assert spec.task == "regression" and spec.direction == "minimize"


def test_default_space_covers_every_optimizer_and_decay_policy():
    space = spec_module.resolve("circles").space
    assert space["optimizer"].choices == (
        "sgd",
        "momentum",
        "nesterov",
        "adagrad",
        "rmsprop",
        "adam",
        "adamw",
    )
    assert space["decay"].choices == ("none", "exponential", "linear", "cosine", "step")
    assert space["learning_rate"].log


@pytest.mark.parametrize(
    "fixture, message",
    [
        (
            "unknown_key",
            r"unknown key\(s\) max_epoch, n_trails; allowed: artifacts, checkpoint_every, data,",
        ),
        ("wrong_type", r"'n_trials' must be a whole number of trials, at least 1, but got 'ten'"),
        ("unknown_source", r"unknown data source 'mnist'; allowed: breast_cancer, circles,"),
        ("unknown_param", r"\[space\] names unknown parameter 'unit'; this model family has:"),
        ("bad_range", r"'learning_rate': low must not exceed high, but got low=0.1, high=0.001"),
        (
            "bad_metric",
            r"metric 'val_iou' is not logged for classification; allowed: val_accuracy, val_loss, val_auc,",
        ),
        (
            "wrong_direction",
            r"val_loss improves when it goes down, so direction must be 'minimize'",
        ),
        ("not_toml", r"not valid TOML"),
        ("no_data", r"missing \[data\] table"),
        ("unknown_sampler", r"unknown sampler 'tpee'; allowed: cmaes, gp, grid, qmc, random, tpe"),
        ("nan_timeout", r"'timeout' is nan, which is not a number a study can use"),
        ("infinite_bound", r"'space.learning_rate.high' is inf"),
        ("negative_seed", r"'seed' must lie in \[0, 4294967295\], but got -7"),
        ("negative_data_seed", r"\[data\] seed must lie in \[0, 4294967295\], but got -1"),
        ("bad_name", r"name '../../x' is not a study name: use 1 to 128 letters"),
        ("short_grace", r"grace_period \(2 s\) must be at least twice heartbeat_interval \(30 s\)"),
        ("train_and_model", r"train = 'train.py:train' builds and trains its own model, so model"),
        ("path_and_train", r"\[data\] names both path and train and test; path names one file"),
        ("split_column_and_train", r"\[data\] names both split_column and train; a split column"),
    ],
)
def test_bad_study_files_name_the_file_and_the_fix(fixture, message):
    path = FIXTURES / f"{fixture}.toml"
    with pytest.raises(StudySpecError, match=message) as info:
        spec_module.load(path)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


def test_direction_follows_the_metric():
    spec = spec_module.from_dict(tiny_raw(metric="val_loss"))
    assert spec.direction == "minimize"


def test_round_trip_through_the_stored_form():
    spec = spec_module.from_dict(tiny_raw())
    again = spec_module.from_dict(spec.to_dict())
    assert again.fingerprint() == spec.fingerprint()
    assert again.to_dict() == spec.to_dict()


def test_fingerprint_ignores_budget_but_not_the_space():
    spec = spec_module.from_dict(tiny_raw())
    assert spec.with_overrides(n_trials=99, sampler="random").fingerprint() == spec.fingerprint()
    changed = spec_module.from_dict(tiny_raw(space={"units": 8}))
    assert changed.fingerprint() != spec.fingerprint()


def test_find_looks_at_a_path_then_local_studies_then_shipped(workdir: Path):
    assert spec_module.find("circles") == spec_module.PACKAGED_STUDIES / "circles.toml"
    (workdir / "studies").mkdir()
    (workdir / "studies" / "circles.toml").write_text('[data]\nsource = "moons"\n')
    assert spec_module.find("circles") == workdir / "studies" / "circles.toml"
    assert spec_module.resolve("circles").data["source"] == "moons"


def test_unknown_study_lists_the_places_and_the_shipped_names(workdir: Path):
    with pytest.raises(
        StudySpecError,
        match=r"No study named 'circels': looked for ./studies/circels.toml and the shipped studies \(breast_cancer, circles, digits, digits_cnn, friedman, moons, noisy_features\)",
    ):
        spec_module.find("circels")
    with pytest.raises(StudySpecError, match=r"No study file at nowhere/x.toml"):
        spec_module.find("nowhere/x.toml")


USER_FAMILY = (
    'SPACE = {"units": {"low": 4, "high": 64, "log": True}}\n'
    "def build(params, input_shape, n_outputs):\n"
    "    raise NotImplementedError\n"
)


def test_a_user_family_space_is_its_space_plus_training_and_may_grow(tmp_path: Path):
    (tmp_path / "model.py").write_text(USER_FAMILY)
    raw = tiny_raw(model="model.py:build", space={"units": {"high": 16}, "depth": [1, 2, 3]})
    space = spec_module.from_dict(raw, base=tmp_path).space
    assert space["units"].high == 16 and space["units"].log  # narrowed, keeps log
    assert space["depth"].choices == (1, 2, 3)  # added: the user's builder reads it
    assert {"learning_rate", "optimizer", "decay", "batch_size"} <= set(space)
    # a built-in family would silently ignore a new parameter, so it is refused
    with pytest.raises(
        StudySpecError, match=r"\[space\] names unknown parameter 'depth'; this model family has:"
    ):
        spec_module.from_dict(tiny_raw(space={"depth": [1, 2]}))


def test_paths_start_at_the_study_file_folder_which_the_stored_form_keeps(
    tmp_path: Path, workdir: Path
):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "model.py").write_text(USER_FAMILY)
    path = folder / "mine.toml"
    path.write_text(
        'model = "model.py:build"\n[data]\nsource = "csv"\npath = "rows.csv"\n'
        'target = "y"\ntask = "regression"\n'
    )
    spec = spec_module.load(path)  # from another current directory
    assert spec.folder == str(folder) and spec.family.user
    assert spec.direction == "minimize" and spec.metric == "val_loss"

    stored = spec.to_dict()
    assert stored["folder"] == str(folder) and stored["model"] == "model.py:build"
    again = spec_module.from_dict(stored, source="study 'mine'")
    assert again.folder == spec.folder and again.fingerprint() == spec.fingerprint()
    # the folder is where the files are, not what is searched: a moved project resumes
    moved = spec_module.from_dict({**stored, "folder": str(tmp_path / "project")})
    assert "folder" not in spec.objective() and moved.fingerprint() == spec.fingerprint()


def test_folder_is_no_key_a_user_is_told_about():
    with pytest.raises(StudySpecError) as info:
        spec_module.from_dict(tiny_raw(n_trails=3))
    assert "folder" not in str(info.value)


def test_an_unknown_model_lists_the_families_and_the_reference_forms():
    with pytest.raises(
        StudySpecError,
        match=r"<spec>: unknown model 'resnet'; allowed: cnn, mlp, or your own as 'module:function' or 'file.py:function'.",
    ):
        spec_module.from_dict(tiny_raw(model="resnet"))


def test_the_cnn_study_reads_digits_as_images():
    spec = spec_module.resolve("digits_cnn")
    assert spec.model == "cnn" and spec.data["reshape"] == [8, 8, 1]
    assert {"filters", "conv_blocks", "kernel_size", "units", "dropout", "batchnorm"} <= set(
        spec.space
    )


@pytest.mark.parametrize(
    "name, shown",
    [
        ("../../x", "'../../x'"),
        ("a/b", "'a/b'"),
        ("tab\there", "'tab\\there'"),
        ("", "''"),
        ("x" * 5000, "'" + "x" * 40 + "...'"),
        ("-leading", "'-leading'"),
    ],
)
def test_a_study_name_follows_one_rule(name: str, shown: str):
    with pytest.raises(StudySpecError) as info:
        spec_module.from_dict(tiny_raw(name=name), source="s.toml")
    assert str(info.value) == (
        f"s.toml: name {shown} is not a study name: use 1 to 128 letters, digits, '_', '.' or"
        " '-', starting with a letter or a digit (it names files, and every supported database"
        " must store it as it is)."
    )


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "timeout = nan",
            r"^s.toml: 'timeout' is nan, which is not a number a study can use; give a finite number\.$",
        ),
        (
            "[space]\nlearning_rate = { low = 1e-3, high = inf }",
            r"'space.learning_rate.high' is inf",
        ),
        ("[early_stopping]\nmin_delta = -inf", r"'early_stopping.min_delta' is -inf"),
        ("seed = -1", r"'seed' must lie in \[0, 4294967295\], but got -1\."),
        ("[data2]", r"unknown key"),
        (
            "heartbeat_interval = 30\ngrace_period = 2",
            r"grace_period \(2 s\) must be at least twice heartbeat_interval \(30 s\): a live trial whose heartbeat comes a little late would otherwise be failed as dead\. Raise grace_period to 60 or more\.",
        ),
    ],
)
def test_numbers_out_of_range_and_non_finite_are_refused(tmp_path, text: str, message: str):
    import tomllib

    head, _, tables = text.partition("[")
    raw = {"name": "s", **tomllib.loads(head), "data": {"source": "circles"}}
    if tables:
        raw.update(tomllib.loads("[" + tables))
    with pytest.raises(StudySpecError, match=message):
        spec_module.from_dict(raw, source="s.toml")


def test_a_negative_data_seed_is_refused():
    with pytest.raises(
        StudySpecError, match=r"\[data\] seed must lie in \[0, 4294967295\], but got -3\."
    ):
        spec_module.from_dict(tiny_raw(data={"source": "circles", "seed": -3}), source="s.toml")


@pytest.mark.parametrize("fixture", sorted(p.stem for p in FIXTURES.glob("*.toml")))
def test_every_bad_study_file_is_one_line_exit_1_and_nothing_stored(fixture, workdir):
    from click.testing import CliRunner

    from autotune.cli import cli

    path = FIXTURES / f"{fixture}.toml"
    result = CliRunner().invoke(cli, ["run", "--study", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {path}") and result.output.count("\n") == 1
    assert "Traceback" not in result.output
    assert list(workdir.iterdir()) == []  # no storage made, nothing written
