"""Model families: the built-in ones' contract, and a user's own builder named by reference."""

import sys
from pathlib import Path

import numpy as np
import pytest

from autotune import data, trial
from autotune.check import check_model
from autotune.errors import ModelError, StudySpecError
from autotune.models import FAMILIES, family
from autotune.space import build_space, typical
from autotune.spec import from_dict

from conftest import USER_MODEL, tiny_raw

INPUTS = {"mlp": (4,), "cnn": (8, 8, 1)}

BUILDERS = """
import keras

def raises(params, input_shape, n_outputs):
    raise ValueError("units must be even")

def not_a_model(params, input_shape, n_outputs):
    return "a model"

def logits(params, input_shape, n_outputs):
    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, keras.layers.Dense(n_outputs)(inputs))

def seven_outputs(params, input_shape, n_outputs):
    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(inputs))

def compiled_without_accuracy(params, input_shape, n_outputs):
    model = logits(params, input_shape, n_outputs)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model

def compiled(params, input_shape, n_outputs):
    model = logits(params, input_shape, n_outputs)
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model
"""


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("n_outputs", [3, 1])
def test_every_family_builds_its_default_space(name: str, n_outputs: int):
    import keras

    space = build_space(FAMILIES[name].space)
    model = FAMILIES[name].build(typical(space), INPUTS[name], n_outputs)
    assert isinstance(model, keras.Model) and not model.compiled
    out = np.asarray(model(np.zeros((2, *INPUTS[name]), dtype="float32")))
    assert out.shape == (2, n_outputs)
    if n_outputs > 1:
        assert np.allclose(out.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_reads_dropout_and_batchnorm(name: str):
    params = {**typical(build_space(FAMILIES[name].space)), "dropout": 0.3, "batchnorm": True}
    layers = {
        type(layer).__name__ for layer in FAMILIES[name].build(params, INPUTS[name], 2).layers
    }
    assert {"Dropout", "BatchNormalization"} <= layers


def test_the_cnn_takes_images_with_or_without_a_channel_and_refuses_flat_rows():
    params = {"filters": 8, "conv_blocks": 3, "kernel_size": 3, "n_layers": 1, "units": 8}
    model = FAMILIES["cnn"].build(params, (8, 8), 10)
    # filters double per block, and pooling stops at 1x1
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [8, 16, 32]
    with pytest.raises(
        ModelError,
        match=r"Model family 'cnn' needs images, .* but the data's examples have shape \(64,\). Add reshape = \[8, 8, 1\] to the study's \[data\] table.",
    ):
        FAMILIES["cnn"].build(params, (64,), 10)


def test_a_user_family_from_a_file_or_a_module(tmp_path: Path):
    (tmp_path / "model.py").write_text(USER_MODEL)
    mine = family("model.py:build", tmp_path)
    assert mine.user and set(mine.space) == {"units", "dropout"}
    assert family(str(tmp_path / "model.py") + ":build").space == mine.space  # an absolute path

    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "nets.py").write_text(USER_MODEL.replace("SPACE = ", "OTHER = "))
    try:
        packaged = family("shop.nets:build", tmp_path)
        assert packaged.user and packaged.space == {}  # no SPACE: the training space alone
    finally:
        for name in [m for m in sys.modules if m == "shop" or m.startswith("shop.")]:
            del sys.modules[name]


def test_a_user_family_reloads_an_edited_file(tmp_path: Path):
    path = tmp_path / "model.py"
    path.write_text(USER_MODEL)
    assert set(family("model.py:build", tmp_path).space) == {"units", "dropout"}
    path.write_text(USER_MODEL.replace('"dropout"', '"rate"'))
    import os

    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert set(family("model.py:build", tmp_path).space) == {"units", "rate"}


@pytest.mark.parametrize(
    "files, model, error, message",
    [
        (
            {},
            "models.py:build",
            ModelError,
            r"s.toml: model 'models.py:build': no file .*models.py. Fix the path; a relative one starts at the study file's folder.",
        ),
        (
            {"model.py": USER_MODEL},
            "model.py:buld",
            ModelError,
            r"s.toml: model 'model.py:buld': model.py has no 'buld'; it defines build. Fix the name after the colon.",
        ),
        (
            {},
            "no_such_package.models:build",
            ModelError,
            r"model 'no_such_package.models:build': no module 'no_such_package.models' is installed or in .*. Install it, or name its file instead",
        ),
        (
            {"model.py": "def build(params, input_shape, n_outputs)\n"},
            "model.py:build",
            ModelError,
            r"importing model.py raised SyntaxError: expected ':' \(model.py, line 1\). Fix the file.",
        ),
        (
            {"model.py": "import tensorflow_addons\n"},
            "model.py:build",
            ModelError,
            r"importing model.py raised ModuleNotFoundError: No module named 'tensorflow_addons' \(model.py, line 1\)",
        ),
        (
            {"model.py": "def build(params, shape):\n    pass\n"},
            "model.py:build",
            ModelError,
            r"model 'model.py:build' must take \(params, input_shape, n_outputs\), but it takes \(params, shape\). Change its arguments.",
        ),
        (
            {"model.py": "build = 3\n"},
            "model.py:build",
            ModelError,
            r"model 'model.py:build' is a int, not a function.",
        ),
        (
            {"model.py": "SPACE = [1]\ndef build(params, input_shape, n_outputs):\n    pass\n"},
            "model.py:build",
            ModelError,
            r"SPACE must be a dict of parameter definitions .* but it is a list.",
        ),
        (
            {
                "model.py": "SPACE = {'units': {'low': 8, 'high': 4}}\ndef build(params, input_shape, n_outputs):\n    pass\n"
            },
            "model.py:build",
            StudySpecError,
            r"s.toml: model 'model.py:build': SPACE 'units': low must not exceed high, but got low=8, high=4.",
        ),
        (
            {},
            "model.py:",
            ModelError,
            r"model 'model.py:' must be 'package.module:function' or 'path/to/file.py:function'",
        ),
        (
            {},
            "mpl",
            StudySpecError,
            r"s.toml: unknown model 'mpl'; allowed: cnn, mlp, or your own as 'module:function' or 'file.py:function'.",
        ),
    ],
)
def test_a_user_family_that_cannot_load_names_the_reference_and_the_fix(
    tmp_path: Path, files, model, error, message
):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(error, match=message) as info:
        family(model, tmp_path, where="s.toml")
    assert "\n" not in str(info.value)


def user_spec(tmp_path: Path, builder: str, **overrides):
    (tmp_path / "builders.py").write_text(BUILDERS)
    raw = tiny_raw(model=f"builders.py:{builder}", space={"batch_size": 1024}, **overrides)
    return from_dict(raw, source="s.toml", base=tmp_path)


@pytest.mark.parametrize(
    "builder, message",
    [
        (
            "raises",
            r"s.toml: model 'builders.py:raises' raised ValueError: units must be even \(builders.py, line 5\) when building with batch_size=1024 .*, input_shape=\(2,\), n_outputs=2. Fix the builder.",
        ),
        (
            "not_a_model",
            r"model 'builders.py:not_a_model' returned str, not a keras.Model. Make it return the model",
        ),
        (
            "seven_outputs",
            r"its model's outputs have shape \(7,\), but the data needs 2 outputs, one per class, or 1 sigmoid output; end it with autotune.models.output_layer\(n_outputs\)",
        ),
        (
            "logits",
            r"its model's outputs are not class probabilities .* or compile the model yourself with loss=keras.losses.SparseCategoricalCrossentropy\(from_logits=True\)",
        ),
        (
            "compiled_without_accuracy",
            r"its model logs loss, but the study's metric val_accuracy needs accuracy. Add metrics=\['accuracy'\] to its compile\(\), or leave compile\(\) to autotune.",
        ),
    ],
)
def test_the_check_build_stops_a_bad_builder(tmp_path: Path, builder: str, message: str):
    spec = user_spec(tmp_path, builder)
    with pytest.raises(ModelError, match=message) as info:
        check_model(spec, data.load(spec.data, spec.folder))
    assert "\n" not in str(info.value)


def test_a_compiled_model_keeps_its_loss_and_metrics_and_gets_the_sampled_optimizer(tmp_path: Path):
    spec = user_spec(tmp_path, "compiled")
    dataset = data.load(spec.data, spec.folder)
    check_model(spec, dataset)
    params = {"batch_size": 1024, "learning_rate": 0.05, "optimizer": "adam", "decay": "none"}
    trained = trial.train(spec, params, dataset, seed=0, reporter=trial.Reporter(spec))
    model = trained.model
    assert model.loss.get_config()["from_logits"] is True
    assert type(model.optimizer).__name__ == "Adam"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    assert 0.0 <= trained.value <= 1.0  # the builder's own accuracy metric, on validation
