"""Splitting and scaling: fixed, seeded train / validation / test splits, and features
standardized with the training split's statistics alone."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from autotune.data.schema import CLASSIFICATION
from autotune.errors import DataError

if TYPE_CHECKING:
    import numpy as np


def split(y: np.ndarray, task: str, data: Mapping[str, Any], label: str) -> tuple[np.ndarray, ...]:
    """Row indices of the train, validation and test splits: seeded, stratified by class."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    seed = data["seed"]
    classify = task == CLASSIFICATION
    rows = np.arange(len(y))
    try:
        rest, test = train_test_split(
            rows,
            test_size=data["test_fraction"],
            random_state=seed,
            stratify=y if classify else None,
        )
        val_share = data["validation_fraction"] / (1.0 - data["test_fraction"])
        train, val = train_test_split(
            rest, test_size=val_share, random_state=seed, stratify=y[rest] if classify else None
        )
    except ValueError as e:
        if not classify:
            raise DataError(
                f"{label}: {len(y)} rows are too few to split into train, validation and test."
                f" Add rows."
            ) from e
        labels, sizes = np.unique(y, return_counts=True)
        raise DataError(
            f"{label}: {len(y)} rows in {len(labels)} classes are too few to split into train,"
            f" validation and test splits that each hold every class; the smallest class,"
            f" {labels[np.argmin(sizes)].item()!r}, has {sizes.min()} row(s). Add rows, or drop"
            f" the rarest classes."
        ) from e
    return train, val, test


def standardize(
    x_train: np.ndarray, x_val: np.ndarray, x_test: np.ndarray, numeric: Any = None
) -> tuple[np.ndarray, ...]:
    """Standardizes each feature (only the ``numeric`` columns, if given) with the training
    split's mean and deviation; examples of any shape are standardized per value."""
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    shape = x_train.shape[1:]
    flat = [a.reshape(len(a), -1) for a in (x_train, x_val, x_test)]
    columns = slice(None) if numeric is None else numeric
    if numeric == []:  # only one-hot columns, which stay 0 and 1
        return tuple(a.astype(np.float32).reshape(len(a), *shape) for a in flat)
    scaler = StandardScaler().fit(flat[0][:, columns])
    out = []
    for a in flat:
        a = a.copy()
        a[:, columns] = scaler.transform(a[:, columns])
        out.append(a.astype(np.float32).reshape(len(a), *shape))
    return tuple(out)


def reshape(x: np.ndarray, shape: list[int], where: str) -> np.ndarray:
    size = math.prod(x.shape[1:])
    if math.prod(shape) != size:
        raise DataError(
            f"{where}: [data] reshape {shape} holds {math.prod(shape)} values per example, but"
            f" the data has {size}. Give a shape whose sizes multiply to {size}."
        )
    return x.reshape(len(x), *shape)
