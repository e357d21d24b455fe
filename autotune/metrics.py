"""Metrics: which way each one improves, and the validation scores autotune computes itself.

Keras logs the loss and the metrics a model is compiled with (``accuracy`` for classes, ``mae``
for regression). Scores that Keras' compiled metrics cannot give for every output form
(a softmax over two classes, one sigmoid unit, many classes), such as AUC, precision, recall
and F1, are computed here with scikit-learn from the model's predictions on the validation
split, after every epoch, and logged as ``val_<name>`` next to Keras' own; ``best`` computes
them on the test split too. Two classes are scored on the second class (the positive one, as
sorted: 1 of 0/1, "yes" of "no"/"yes"); more classes are macro-averaged.

A study's ``metric`` may also name any metric that a user's model, ``fit`` or training loop
reports; its ``direction`` is then required unless its name is one of :data:`DIRECTIONS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from autotune.data.schema import CLASSIFICATION, REGRESSION

if TYPE_CHECKING:
    import numpy as np

# Metric names (without ``val_``) and the direction that improves them.
DIRECTIONS: dict[str, str] = {
    **dict.fromkeys(
        ("accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
         "auc", "precision", "recall", "f1", "top_k_accuracy", "r2"),
        "maximize",
    ),
    **dict.fromkeys(("loss", "mae", "mse", "rmse", "mape", "msle"), "minimize"),
}  # fmt: skip


def direction_of(metric: str) -> str | None:
    """The direction that improves ``metric`` (``val_auc`` → ``maximize``), or None if unknown."""
    return DIRECTIONS.get(metric.removeprefix("val_"))


def _labels(proba: np.ndarray) -> np.ndarray:
    return _as_classes(proba).argmax(axis=1)


def _as_classes(proba: np.ndarray) -> np.ndarray:
    """Class probabilities as one column per class; one sigmoid unit becomes two columns."""
    import numpy as np

    proba = np.asarray(proba, dtype=np.float64).reshape(len(proba), -1)
    return np.concatenate([1.0 - proba, proba], axis=1) if proba.shape[1] == 1 else proba


def _auc(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    classes = _as_classes(proba)
    if classes.shape[1] == 2:
        return float(roc_auc_score(y, classes[:, 1]))
    return float(roc_auc_score(y, classes, multi_class="ovr", labels=range(classes.shape[1])))


def _averaged(score: Callable[..., float]) -> Callable[[np.ndarray, np.ndarray], float]:
    def scorer(y: np.ndarray, proba: np.ndarray) -> float:
        binary = _as_classes(proba).shape[1] == 2
        average = "binary" if binary else "macro"
        return float(score(y, _labels(proba), average=average, zero_division=0))

    return scorer


def _precision(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import precision_score

    return _averaged(precision_score)(y, proba)


def _recall(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import recall_score

    return _averaged(recall_score)(y, proba)


def _f1(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return _averaged(f1_score)(y, proba)


def _top_k(y: np.ndarray, proba: np.ndarray, k: int = 5) -> float:
    import numpy as np

    classes = _as_classes(proba)
    top = np.argsort(-classes, axis=1)[:, : min(k, classes.shape[1])]
    return float(np.mean([label in row for label, row in zip(y, top, strict=True)]))


def _rmse(y: np.ndarray, predicted: np.ndarray) -> float:
    import numpy as np

    return float(math.sqrt(np.mean((np.ravel(predicted) - np.ravel(y)) ** 2)))


def _mse(y: np.ndarray, predicted: np.ndarray) -> float:
    return _rmse(y, predicted) ** 2


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y, predicted.reshape(len(y))))


# task -> name -> scorer(y_true, predictions) -> float
SCORERS: dict[str, dict[str, Callable[[Any, Any], float]]] = {
    CLASSIFICATION: {
        "auc": _auc,
        "precision": _precision,
        "recall": _recall,
        "f1": _f1,
        "top_k_accuracy": _top_k,
    },
    REGRESSION: {"rmse": _rmse, "mse": _mse, "r2": _r2},
}


def scored(task: str, names: list[str]) -> dict[str, Callable[[Any, Any], float]]:
    """The scorers among ``names`` (without ``val_``) that autotune computes for ``task``."""
    return {name: SCORERS[task][name] for name in names if name in SCORERS[task]}


def score(
    scorers: Mapping[str, Callable[[Any, Any], float]], y: Any, predicted: Any
) -> dict[str, float]:
    """Each scorer's value on these targets and predictions (NaN where it is undefined, such as
    AUC on a split that holds one class)."""
    import warnings

    out = {}
    for name, scorer in scorers.items():
        with warnings.catch_warnings():
            # scikit-learn warns where it returns NaN for an undefined score; NaN says it
            warnings.simplefilter("ignore")
            try:
                out[name] = scorer(y, predicted)
            except ValueError:
                out[name] = float("nan")
    return out
