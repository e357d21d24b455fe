"""Data sets and their fixed, seeded train / validation / test splits.

The test split is held out from the search: trials train on ``train`` and are scored on
``validation``; only the final evaluation of the best configuration reads ``test``.
Features are standardized with statistics of the training split alone.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from autotune.errors import StudySpecError

CLASSIFICATION = "classification"
REGRESSION = "regression"

# The metrics Keras logs for each task, with the direction that improves them.
METRICS: dict[str, dict[str, str]] = {
    CLASSIFICATION: {"val_accuracy": "maximize", "val_loss": "minimize"},
    REGRESSION: {"val_loss": "minimize", "val_mae": "minimize"},
}


def _circles(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    return make_circles(n_samples=1000, factor=0.3, noise=0.05, random_state=seed)


def _moons(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    return make_moons(n_samples=2000, noise=0.3, random_state=seed)


def _digits(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


def _breast_cancer(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)


# name -> (loader(seed) -> (X, y), task)
SOURCES: dict[str, tuple[Callable[[int], tuple[np.ndarray, np.ndarray]], str]] = {
    "circles": (_circles, CLASSIFICATION),
    "moons": (_moons, CLASSIFICATION),
    "digits": (_digits, CLASSIFICATION),
    "breast_cancer": (_breast_cancer, CLASSIFICATION),
}

_DATA_KEYS: dict[str, type | tuple[type, ...]] = {
    "source": str,
    "seed": int,
    "validation_fraction": float,
    "test_fraction": float,
}
DEFAULTS: dict[str, Any] = {"seed": 0, "validation_fraction": 0.2, "test_fraction": 0.2}


@dataclass(frozen=True)
class Dataset:
    """Arrays of the three splits, ready for Keras.

    Attributes:
        task: ``"classification"`` or ``"regression"``.
        n_outputs: Number of classes, or 1 for regression.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    n_outputs: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.x_train), "validation": len(self.x_val), "test": len(self.x_test)}


def validate(data: Any, where: str) -> dict[str, Any]:
    """Checks a study file's ``[data]`` table and fills in the defaults.

    Raises:
        StudySpecError: An unknown key or source, a wrong type, or fractions that leave no
            training data.
    """
    if not isinstance(data, Mapping):
        raise StudySpecError(f"{where}: [data] must be a table with a source, but got {data!r}.")
    unknown = sorted(set(data) - set(_DATA_KEYS))
    if unknown:
        raise StudySpecError(
            f"{where}: [data] has unknown key(s) {', '.join(unknown)};"
            f" allowed: {', '.join(sorted(_DATA_KEYS))}."
        )
    out = {**DEFAULTS, **data}
    if "source" not in data:
        raise StudySpecError(
            f"{where}: [data] needs a source; one of {', '.join(sorted(SOURCES))}."
        )
    for key, kind in _DATA_KEYS.items():
        value = out[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = out[key] = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise StudySpecError(
                f"{where}: [data] {key} must be of type {kind.__name__}, but got {value!r}."
            )
    if out["source"] not in SOURCES:
        raise StudySpecError(
            f"{where}: unknown data source '{out['source']}'; allowed: {', '.join(sorted(SOURCES))}."
        )
    for key in ("validation_fraction", "test_fraction"):
        if not 0.0 < out[key] < 1.0:
            raise StudySpecError(f"{where}: [data] {key} must lie in (0, 1), but got {out[key]}.")
    if out["validation_fraction"] + out["test_fraction"] >= 0.9:
        raise StudySpecError(
            f"{where}: validation_fraction + test_fraction must leave at least 10% for"
            f" training, but they add up to {out['validation_fraction'] + out['test_fraction']}."
        )
    return out


def task_of(data: Mapping[str, Any]) -> str:
    """The task of a validated ``[data]`` table."""
    return SOURCES[data["source"]][1]


def load(data: Mapping[str, Any]) -> Dataset:
    """Loads and splits a validated ``[data]`` table; cached, so a worker builds it once."""
    return _load_cached(json.dumps(dict(data), sort_keys=True))


@functools.lru_cache(maxsize=4)
def _load_cached(key: str) -> Dataset:
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    data = json.loads(key)
    loader, task = SOURCES[data["source"]]
    x, y = loader(data["seed"])
    x = np.asarray(x, dtype=np.float32)
    seed = data["seed"]
    stratify = y if task == CLASSIFICATION else None
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=data["test_fraction"], random_state=seed, stratify=stratify
    )
    val_share = data["validation_fraction"] / (1.0 - data["test_fraction"])
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest,
        y_rest,
        test_size=val_share,
        random_state=seed,
        stratify=y_rest if task == CLASSIFICATION else None,
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_val, x_test = (scaler.transform(a).astype(np.float32) for a in (x_train, x_val, x_test))
    if task == CLASSIFICATION:
        classes = np.unique(y_train)
        y_train, y_val, y_test = (np.searchsorted(classes, a).astype(np.int32) for a in (y_train, y_val, y_test))
        n_outputs = len(classes)
    else:
        y_train, y_val, y_test = (np.asarray(a, dtype=np.float32) for a in (y_train, y_val, y_test))
        n_outputs = 1
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, task, n_outputs)
