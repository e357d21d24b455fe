"""The Reporter that every epoch goes through: Keras' fit, a user's fit, a user's loop."""

import math

import numpy as np
import optuna
import pytest

from autotune.errors import ModelError, TrialDiverged
from autotune.spec import from_dict
from autotune.trial import Reporter

from conftest import tiny_raw


def reporter(patience: int = 2, min_delta: float = 0.0, **kwargs) -> Reporter:
    spec = from_dict(tiny_raw(early_stopping={"patience": patience, "min_delta": min_delta}))
    return Reporter(spec, label="s.toml: train 'loop.py:train'", **kwargs)


def test_early_stopping_follows_keras_rule_of_patience():
    r = reporter(patience=2)
    said = [r.report(epoch, val_accuracy=v) for epoch, v in enumerate([0.5, 0.7, 0.6, 0.7, 0.9])]
    # 0.6 and then 0.7 (not above the best, 0.7) are two epochs without improvement
    assert said == [False, False, False, True, True]
    assert r.stopped and r.epochs == 5
    assert r.best() == (5, 0.9)


def test_min_delta_asks_for_a_real_improvement_and_minimizing_metrics_go_down():
    r = reporter(patience=1, min_delta=0.05)
    assert [r.report(e, val_accuracy=v) for e, v in enumerate([0.5, 0.53, 0.6])] == [
        False,
        True,
        True,
    ]
    spec = from_dict(tiny_raw(metric="val_loss", early_stopping={"patience": 1}))
    down = Reporter(spec)
    assert [down.report(e, val_loss=v) for e, v in enumerate([0.9, 0.5, 0.7])] == [
        False,
        False,
        True,
    ]
    assert down.best() == (2, 0.5)


def test_without_early_stopping_it_never_says_stop():
    r = reporter(patience=1, early_stopping=False)
    assert not any(r.report(e, val_accuracy=0.5) for e in range(5))


def test_values_may_be_numpy_scalars_and_come_as_a_dict_or_keywords():
    # (TensorFlow tensors, as a GradientTape loop reports them, are in tests/test_own_training.py)
    r = reporter()
    r.report(0, {"loss": np.float32(0.3)}, val_accuracy=np.float64(0.75))
    assert r.values == [0.75]


def test_a_nan_loss_ends_the_trial_as_diverged():
    with pytest.raises(TrialDiverged, match=r"loss became nan at epoch 1"):
        reporter().report(0, loss=math.nan, val_accuracy=0.5)


def test_the_pruner_decides_after_each_report():
    calls = []

    def prune(epoch: int, value: float) -> None:
        calls.append((epoch, value))
        if value < 0.3:
            raise optuna.TrialPruned()

    r = reporter(prune=prune)
    r.report(0, val_accuracy=0.6)
    with pytest.raises(optuna.TrialPruned):
        r.report(1, val_accuracy=0.2)
    assert calls == [(0, 0.6), (1, 0.2)]


@pytest.mark.parametrize(
    "epochs, message",
    [
        (
            [0, 0],
            r"^s.toml: train 'loop.py:train' reported epoch 0 after epoch 0; report every epoch once, in order, counting from 0\.$",
        ),
        ([1], r"reported epoch 1 after none;"),
        ([0, 1, 3], r"reported epoch 3 after epoch 1;"),
    ],
)
def test_epochs_must_come_once_each_in_order(epochs, message):
    r = reporter()
    with pytest.raises(ModelError, match=message):
        for epoch in epochs:
            r.report(epoch, val_accuracy=0.5)


def test_a_missing_metric_names_what_was_reported():
    with pytest.raises(
        ModelError,
        match=r"reported accuracy, loss at epoch 0, but not the study's metric val_accuracy",
    ):
        reporter().report(0, loss=0.1, accuracy=0.9)
