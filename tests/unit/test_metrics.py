"""Metrics: which way each improves, and the scores autotune computes for any output form."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from autotune import metrics
from autotune.errors import StudySpecError
from autotune.spec import from_dict

from conftest import tiny_raw

Y = np.array([0, 0, 1, 1, 1, 0])
POSITIVE = np.array([0.1, 0.6, 0.8, 0.4, 0.9, 0.2])


@pytest.mark.parametrize(
    "metric, direction",
    [("val_auc", "maximize"), ("val_f1", "maximize"), ("val_loss", "minimize"),
     ("val_rmse", "minimize"), ("val_accuracy", "maximize"), ("val_iou", None)],
)  # fmt: skip
def test_directions_of_known_metrics(metric, direction):
    assert metrics.direction_of(metric) == direction


def test_one_sigmoid_unit_and_a_two_class_softmax_score_alike():
    softmax = np.stack([1 - POSITIVE, POSITIVE], axis=1)
    for name, scorer in metrics.SCORERS["classification"].items():
        assert scorer(Y, POSITIVE[:, None]) == pytest.approx(scorer(Y, softmax)), name
    assert metrics.SCORERS["classification"]["auc"](Y, softmax) == roc_auc_score(Y, POSITIVE)
    labels = (POSITIVE > 0.5).astype(int)
    assert metrics.SCORERS["classification"]["f1"](Y, softmax) == f1_score(Y, labels)


def test_many_classes_are_macro_averaged():
    y = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[[0, 1, 2, 1, 1, 0]] * 0.8 + 0.2 / 3
    assert metrics.SCORERS["classification"]["f1"](y, proba) == pytest.approx(
        f1_score(y, proba.argmax(1), average="macro")
    )
    assert metrics.SCORERS["classification"]["auc"](y, proba) == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr")
    )


def test_an_undefined_score_is_nan_not_an_error():
    scores = metrics.score(
        metrics.scored("classification", ["auc"]), np.zeros(4, int), np.full((4, 1), 0.3)
    )
    assert np.isnan(scores["auc"])


def test_regression_scores():
    y, predicted = np.array([1.0, 2.0, 3.0]), np.array([[1.0], [2.0], [5.0]])
    scores = metrics.score(metrics.scored("regression", ["rmse", "mse", "r2"]), y, predicted)
    assert scores["mse"] == pytest.approx(4 / 3) and scores["rmse"] == pytest.approx((4 / 3) ** 0.5)


def test_a_study_on_val_auc_maximizes_without_being_told():
    spec = from_dict(tiny_raw(metric="val_auc", metrics=["f1", "precision"]))
    assert spec.direction == "maximize" and spec.metrics == ("f1", "precision")
    assert spec.to_dict()["metrics"] == ["f1", "precision"]


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            tiny_raw(metric="val_iou"),
            r"metric 'val_iou' is not logged for classification; allowed: val_accuracy, val_loss, val_auc, val_precision, val_recall, val_f1, val_top_k_accuracy\. A model, fit or training loop of your own may log others\.",
        ),
        (
            tiny_raw(metric="auc"),
            r"metric must name a validation metric, val_<name> as Keras logs it \(val_accuracy, val_auc, ...\), but got 'auc'\.",
        ),
        (
            tiny_raw(metrics=["auc", "iou"]),
            r"metrics has 'iou', which autotune does not score for classification; allowed: auc, precision, recall, f1, top_k_accuracy\.",
        ),
        (
            tiny_raw(metric="val_auc", direction="minimize"),
            r"val_auc improves when it goes up, so direction must be 'maximize', not 'minimize'\.",
        ),
    ],
)
def test_bad_metrics_are_refused_when_the_study_file_loads(raw, message):
    with pytest.raises(StudySpecError, match=message):
        from_dict(raw, source="s.toml")


def test_a_metric_of_the_users_own_needs_its_direction(tmp_path):
    (tmp_path / "model.py").write_text("def build(params, input_shape, n_outputs):\n    pass\n")
    raw = tiny_raw(model="model.py:build", metric="val_iou", space={"batch_size": 64})
    with pytest.raises(
        StudySpecError,
        match=r'^s.toml: autotune does not know which way val_iou improves; set direction = "maximize" or "minimize"\.$',
    ):
        from_dict(raw, source="s.toml", base=tmp_path)
    assert (
        from_dict({**raw, "direction": "maximize"}, source="s.toml", base=tmp_path).direction
        == "maximize"
    )
