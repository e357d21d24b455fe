"""Data sets and their fixed, seeded train / validation / test splits.

A study's ``[data]`` table names a source: a bundled data set (circles, moons, digits,
breast_cancer, noisy_features; friedman for regression), the user's ``csv`` or ``npz`` file,
or the user's function that returns ``(X, y)`` (``"package.module:function"`` or
``"path/to/file.py:function"``). Paths are relative to the study file's folder.

The test split is held out from the search: trials train on ``train`` and are scored on
``validation``; only the final evaluation of the best configuration reads ``test``. Numeric
features are standardized with statistics of the training split alone; a CSV's text columns
are one-hot encoded with the categories of the training split (a category seen only in the
validation or test split encodes as all zeros). Missing values are refused, not guessed.
What was fitted is kept on the data set (:class:`Preprocessing`), so that an exported model
can take raw inputs.

Data that comes split already names its ``train``, ``validation`` and ``test`` files instead of
``path``, or a CSV column that says each row's split (:mod:`autotune.data.splits`).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.data import streams
from autotune.data.images import CHANNELS, RESCALE, Images, scan
from autotune.data.preprocess import (
    Preprocessing,
    of_arrays,
    of_columns,
    reshape,
    split,
    standardize,
)
from autotune.data.schema import (
    BUILTIN,
    CLASSIFICATION,
    FILE_SOURCES,
    METRICS,
    REGRESSION,
    SPLIT_KEYS,
    TASKS,
    kind_of,
    task_of,
    validate,
)
from autotune.data.sources import (
    LOADERS,
    call_function,
    check_features,
    path_of,
    targets,
)
from autotune.data.splits import read_arrays, read_table
from autotune.data.streams import Streams
from autotune.errors import DataError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BUILTIN",
    "CLASSIFICATION",
    "METRICS",
    "REGRESSION",
    "TASKS",
    "Dataset",
    "Preprocessing",
    "kind_of",
    "load",
    "task_of",
    "validate",
]


@dataclass(frozen=True)
class Dataset:
    """Arrays of the three splits, ready for Keras.

    Attributes:
        task: ``"classification"`` or ``"regression"``.
        n_outputs: Number of classes, or 1 for regression.
        classes: The class labels, in the order of the model's outputs (classification).
        features: The names of the columns of ``x`` (a CSV's columns, one per category for a
            one-hot encoded one); empty for array data.
        preprocessing: What turns raw inputs into ``x``, fitted on the training split.
        rows: The row indices of each split (``train``, ``validation``, ``test``) in the
            source: an array's examples, or a CSV's rows of data, counted from 0 after the
            header, blank lines left out. With split files, each split's rows in its own file
            (a split taken from the training split, in the training file).
        images: For a folder of images: how a file becomes an example. ``x_train``,
            ``x_val`` and ``x_test`` then hold the files' paths, which the training pipeline
            reads as it goes (see :mod:`autotune.data.images`).
        streams: For a data function's ``tf.data`` streams (see
            :mod:`autotune.data.streams`): ``x_train``, ``x_val`` and ``x_test`` then hold the
            elements' positions in their streams, and the pipelines read the streams.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    n_outputs: int
    classes: tuple[Any, ...] = ()
    features: tuple[str, ...] = ()
    preprocessing: Preprocessing | None = None
    rows: Mapping[str, np.ndarray] = field(default_factory=dict)
    images: Images | None = None
    streams: Streams | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.images is not None:
            return self.images.shape
        if self.streams is not None:
            return tuple(self.streams.train.element_spec[0].shape)
        return tuple(self.x_train.shape[1:])

    def examples(self, x: np.ndarray) -> np.ndarray:
        """Training examples as the model takes them: ``x`` itself, its image files read, or
        (streams) the first ``len(x)`` of the training stream."""
        if self.images is not None:
            return self.images.read(x)
        if self.streams is not None:
            return self.streams.read(len(x))
        return x

    def stream(self, split: str) -> Any:
        """The ``tf.data`` stream of a split, or None when the data is not streams."""
        return self.streams.of(split) if self.streams is not None else None

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.x_train), "validation": len(self.x_val), "test": len(self.x_test)}


def load(
    data: Mapping[str, Any], folder: str | os.PathLike[str] | None = None, *, where: str = "[data]"
) -> Dataset:
    """Loads and splits a validated ``[data]`` table; cached, so a worker builds it once.

    Args:
        data: The validated table.
        folder: Where relative paths start (the study file's folder); the current directory by
            default.
        where: Names the study file in error messages.

    Raises:
        DataError: The file or function is missing or fails, or the data cannot be used as it
            is (a missing column or value, text where numbers belong, too few rows).
    """
    folder = Path(folder or ".").absolute()
    stamp = None
    if data["source"] == "images":
        return _images(data, folder, where)
    if data["source"] in FILE_SOURCES:
        # A file edited between two runs in one process (a notebook) is read again.
        paths = [path_of(data, folder, key) for key in ("path", *SPLIT_KEYS) if key in data]
        stamp = tuple(
            (p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else None for p in paths
        )
    return _load_cached(json.dumps(dict(data), sort_keys=True), str(folder), stamp, where)


@functools.lru_cache(maxsize=4)
def _load_cached(key: str, folder: str, stamp: Any, where: str) -> Dataset:
    import numpy as np

    data = json.loads(key)
    task = task_of(data)
    kind = kind_of(data["source"])
    label = f"{where}: [data] source '{data['source']}'"
    if kind == "csv":
        table, given = read_table(data, Path(folder), task, where)
        label, y, encode = str(table.path), table.y, table.encode
    else:
        given = None
        if kind == "builtin":
            x, y = LOADERS[data["source"]](data["seed"])
        elif kind == "npz":
            x, y, label, given = read_arrays(data, Path(folder), task, where)
        else:
            result = call_function(data["source"], Path(folder), where)
            if streams.is_streams(result):
                return _streams(streams.check(result, label), task, label)
            x, y = result
        y = targets(y, task, f"{label}: y")
        encode = functools.partial(_split_rows, check_features(x, len(y), label))
    if given is None:
        train, val, test = split(y, task, data, label)
        rows = {"train": train, "validation": val, "test": test}
    else:
        train, val, test = given.split(y, task, data)
        rows = given.in_files(train=train, validation=val, test=test)
    x_train, x_val, x_test, names, numeric, shift = encode(train, val, test)
    raw_shape, raw_dtype = x_train.shape[1:], x_train.dtype.name
    (x_train, x_val, x_test), mean, scale = standardize(x_train, x_val, x_test, numeric, shift)
    reshaped = data.get("reshape")
    if kind == "csv":
        features = list(table.columns)
        preprocessing = of_columns(
            features, names, numeric, mean, scale, reshaped, raw_dtype, shift
        )
    else:
        preprocessing = of_arrays(raw_shape, mean, scale, reshaped, raw_dtype)
    if "reshape" in data:
        shape = data["reshape"]
        x_train, x_val, x_test = (reshape(a, shape, where) for a in (x_train, x_val, x_test))

    y_train, y_val, y_test = y[train], y[val], y[test]
    classes: tuple[Any, ...] = ()
    if task == CLASSIFICATION:
        found = np.unique(y_train)
        if len(found) < 2:
            raise DataError(
                f"{label}: the target holds one class only ({found[0].item()!r}), and there is"
                f" nothing to tell apart. Give examples of at least two classes, or set task ="
                f' "regression" for a number to predict.'
            )
        y_train, y_val, y_test = (
            np.searchsorted(found, a).astype(np.int32) for a in (y_train, y_val, y_test)
        )
        classes = tuple(c.item() for c in found)
        n_outputs = len(found)
    else:
        y_train, y_val, y_test = (np.asarray(a, dtype=np.float32) for a in (y_train, y_val, y_test))
        n_outputs = 1
    return Dataset(
        x_train,
        y_train,
        x_val,
        y_val,
        x_test,
        y_test,
        task,
        n_outputs,
        classes,
        names,
        preprocessing=preprocessing,
        rows=rows,
    )


def _images(data: Mapping[str, Any], folder: Path, where: str) -> Dataset:
    """A folder of class folders, split by file (seeded, stratified by class)."""
    import numpy as np

    path = path_of(data, folder)
    paths, names = scan(path, where)
    label = f"{where}: [data] path '{path}'"
    train, val, test = split(names, CLASSIFICATION, data, label)
    classes = np.unique(names[train])
    for split_name, rows in (("validation", val), ("test", test)):
        unseen = sorted(set(names[rows]) - set(classes))
        if unseen:
            raise DataError(
                f"{label}: class '{unseen[0]}' is in the {split_name} split but never in train."
                f" Add images of it."
            )
    height, width = data["image_size"]
    images = Images(height, width, CHANNELS[data["color_mode"]])
    y = np.searchsorted(classes, names).astype(np.int32)
    preprocessing = Preprocessing(shape=images.shape, rescale=RESCALE)
    return Dataset(
        paths[train], y[train], paths[val], y[val], paths[test], y[test], CLASSIFICATION,
        len(classes), tuple(str(c) for c in classes), (), preprocessing,
        {"train": train, "validation": val, "test": test}, images,
    )  # fmt: skip


def _streams(found: dict[str, Any], task: str, label: str) -> Dataset:
    """A data function's tf.data streams: read once for their labels and lengths."""
    import numpy as np

    y = {name: streams.labels(stream) for name, stream in found.items()}
    classes = None
    indices: dict[str, np.ndarray]
    if task == CLASSIFICATION:
        classes = np.unique(y["train"])
        if len(classes) < 2:
            raise DataError(
                f"{label}: the training stream holds one class only, and there is nothing to"
                f" tell apart. Give examples of at least two classes."
            )
        for name in ("validation", "test"):
            unseen = sorted(set(y[name].tolist()) - set(classes.tolist()))
            if unseen:
                raise DataError(
                    f"{label}: class {unseen[0]!r} is in the {name} stream but never in train."
                )
        indices = {k: np.searchsorted(classes, v).astype(np.int32) for k, v in y.items()}
    else:
        indices = {k: v.astype(np.float32).reshape(-1) for k, v in y.items()}
    mapped = streams.mapped(found, task, classes)
    shape = tuple(found["train"].element_spec[0].shape)
    rows = {name: np.arange(len(indices[name])) for name in streams.SPLITS}
    return Dataset(
        rows["train"], indices["train"], rows["validation"], indices["validation"],
        rows["test"], indices["test"], task,
        len(classes) if classes is not None else 1,
        tuple(c.item() for c in classes) if classes is not None else (), (),
        Preprocessing(shape=shape, raw=True), rows, None, mapped,
    )  # fmt: skip


def _split_rows(
    x: np.ndarray, train: np.ndarray, val: np.ndarray, test: np.ndarray
) -> tuple[Any, ...]:
    """Array features split by rows: no names, every column numeric, nothing shifted."""
    return x[train], x[val], x[test], (), None, None
