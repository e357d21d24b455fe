"""Data sets and their fixed, seeded train / validation / test splits.

A study's ``[data]`` table names a source: a bundled data set (circles, moons, digits,
breast_cancer), the user's ``csv`` or ``npz`` file, or the user's function that returns
``(X, y)`` (``"package.module:function"`` or ``"path/to/file.py:function"``). Paths are relative
to the study file's folder.

The test split is held out from the search: trials train on ``train`` and are scored on
``validation``; only the final evaluation of the best configuration reads ``test``. Numeric
features are standardized with statistics of the training split alone; a CSV's text columns
are one-hot encoded with the categories of the training split (a category seen only in the
validation or test split encodes as all zeros). Missing values are refused, not guessed.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from autotune import references
from autotune.errors import DataError, StudySpecError

if TYPE_CHECKING:
    import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

# The metrics Keras logs for each task, with the direction that improves them.
METRICS: dict[str, dict[str, str]] = {
    CLASSIFICATION: {"val_accuracy": "maximize", "val_loss": "minimize"},
    REGRESSION: {"val_loss": "minimize", "val_mae": "minimize"},
}

# A CSV cell that holds one of these (case aside) is a missing value.
MISSING = ("", "?", "na", "n/a", "nan", "null")
# A text column with more distinct values than this (and than half the training rows) looks
# like an identifier or free text, whose one-hot encoding would only memorize rows.
MAX_CATEGORIES = 50


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
# The user's own files; a source with a colon is the user's function.
FILE_SOURCES = ("csv", "npz")
FUNCTION = "function"

_COMMON_KEYS: dict[str, type | tuple[type, ...]] = {
    "source": str,
    "seed": int,
    "validation_fraction": float,
    "test_fraction": float,
    "reshape": list,
}
# Keys by kind of source: the built-in data sets know their task, the user's data does not.
_SOURCE_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "builtin": {},
    "csv": {"path": str, "target": str, "features": list, "task": str, "separator": str},
    "npz": {"path": str, "x": str, "y": str, "task": str},
    FUNCTION: {"task": str},
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "builtin": (),
    "csv": ("path", "target", "task"),
    "npz": ("path", "task"),
    FUNCTION: ("task",),
}
DEFAULTS: dict[str, Any] = {"seed": 0, "validation_fraction": 0.2, "test_fraction": 0.2}
_SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "builtin": {},
    "csv": {"separator": ","},
    "npz": {"x": "x", "y": "y"},
    FUNCTION: {},
}
_ALLOWED_SOURCES = (
    ", ".join(sorted([*SOURCES, *FILE_SOURCES]))
    + ", or your own function as 'module:function' or 'file.py:function'"
)


@dataclass(frozen=True)
class Dataset:
    """Arrays of the three splits, ready for Keras.

    Attributes:
        task: ``"classification"`` or ``"regression"``.
        n_outputs: Number of classes, or 1 for regression.
        classes: The class labels, in the order of the model's outputs (classification).
        features: The names of the columns of ``x`` (a CSV's columns, one per category for a
            one-hot encoded one); empty for array data.
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

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.x_train), "validation": len(self.x_val), "test": len(self.x_test)}


def kind_of(source: str) -> str:
    """``"builtin"``, ``"csv"``, ``"npz"`` or ``"function"``: what a ``[data] source`` names."""
    if source in SOURCES:
        return "builtin"
    if source in FILE_SOURCES:
        return source
    return FUNCTION


def validate(data: Any, where: str) -> dict[str, Any]:
    """Checks a study file's ``[data]`` table and fills in the defaults.

    Only the table's form is checked here; the files themselves are read when the study runs.

    Raises:
        StudySpecError: An unknown key or source, a missing or wrongly typed key, or fractions
            that leave no training data.
    """
    if not isinstance(data, Mapping):
        raise StudySpecError(f"{where}: [data] must be a table with a source, but got {data!r}.")
    source = data.get("source")
    if source is None:
        raise StudySpecError(
            f"{where}: [data] needs a source; one of {_ALLOWED_SOURCES}."
        )
    if not isinstance(source, str):
        raise StudySpecError(f"{where}: [data] source must be of type str, but got {source!r}.")
    if source not in SOURCES and source not in FILE_SOURCES and not references.is_reference(source):
        raise StudySpecError(
            f"{where}: unknown data source '{source}'; allowed: {_ALLOWED_SOURCES}."
        )
    kind = kind_of(source)
    keys = {**_COMMON_KEYS, **_SOURCE_KEYS[kind]}
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise StudySpecError(
            f"{where}: [data] has unknown key(s) {', '.join(unknown)} for source '{source}';"
            f" allowed: {', '.join(sorted(keys))}."
        )
    missing = [key for key in _REQUIRED[kind] if key not in data]
    if missing:
        raise StudySpecError(
            f"{where}: [data] source '{source}' needs {' and '.join(missing)}"
            + ("; add for example target = \"label\"" if "target" in missing else "")
            + (f"; task is {' or '.join(TASKS)}" if "task" in missing else "")
            + "."
        )
    out = {**DEFAULTS, **_SOURCE_DEFAULTS[kind], **data}
    for key, value in out.items():
        kind_of_value = keys[key]
        if kind_of_value is float and isinstance(value, int) and not isinstance(value, bool):
            value = out[key] = float(value)
        if not isinstance(value, kind_of_value) or isinstance(value, bool):
            raise StudySpecError(
                f"{where}: [data] {key} must be of type {kind_of_value.__name__}, but got"
                f" {value!r}."
            )
    for key in ("validation_fraction", "test_fraction"):
        if not 0.0 < out[key] < 1.0:
            raise StudySpecError(f"{where}: [data] {key} must lie in (0, 1), but got {out[key]}.")
    if out["validation_fraction"] + out["test_fraction"] >= 0.9:
        raise StudySpecError(
            f"{where}: validation_fraction + test_fraction must leave at least 10% for"
            f" training, but they add up to {out['validation_fraction'] + out['test_fraction']}."
        )
    if "task" in out and out["task"] not in TASKS:
        raise StudySpecError(
            f"{where}: [data] task must be {' or '.join(TASKS)}, but got '{out['task']}'."
        )
    if "reshape" in out and (
        not out["reshape"]
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in out["reshape"])
    ):
        raise StudySpecError(
            f"{where}: [data] reshape must be a list of positive whole numbers, the shape of one"
            f" example such as [8, 8, 1], but got {out['reshape']!r}."
        )
    if "features" in out:
        features = out["features"]
        if not features or not all(isinstance(f, str) for f in features):
            raise StudySpecError(
                f"{where}: [data] features must be a non-empty list of column names, but got"
                f" {features!r}."
            )
        if out["target"] in features:
            raise StudySpecError(
                f"{where}: [data] features include the target '{out['target']}'; a model must not"
                f" see its answer. Leave it out of features."
            )
    if "separator" in out and len(out["separator"]) != 1:
        raise StudySpecError(
            f"{where}: [data] separator must be one character such as \",\" or \";\", but got"
            f" {out['separator']!r}."
        )
    return out


def task_of(data: Mapping[str, Any]) -> str:
    """The task of a validated ``[data]`` table."""
    if data["source"] in SOURCES:
        return SOURCES[data["source"]][1]
    return data["task"]


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
    if data["source"] in FILE_SOURCES:
        # A file edited between two runs in one process (a notebook) is read again.
        path = _path(data, folder)
        stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else None
    return _load_cached(json.dumps(dict(data), sort_keys=True), str(folder), stamp, where)


@functools.lru_cache(maxsize=4)
def _load_cached(key: str, folder: str, stamp: Any, where: str) -> Dataset:
    import numpy as np

    data = json.loads(key)
    task = task_of(data)
    kind = kind_of(data["source"])
    label = f"{where}: [data] source '{data['source']}'"
    if kind == "csv":
        table = _Table.read(_path(data, Path(folder)), data, task, where)
        label, y, encode = str(table.path), table.y, table.encode
    else:
        if kind == "builtin":
            x, y = SOURCES[data["source"]][0](data["seed"])
        elif kind == "npz":
            path = _path(data, Path(folder))
            label = str(path)
            x, y = _read_npz(path, data, where)
        else:
            x, y = _call_function(data["source"], Path(folder), where)
        y = _targets(y, task, f"{label}: y")
        encode = functools.partial(_rows, _check_features(x, len(y), label))
    train, val, test = _split(y, task, data, label)
    x_train, x_val, x_test, names, numeric = encode(train, val, test)
    x_train, x_val, x_test = _standardize(x_train, x_val, x_test, numeric)
    if "reshape" in data:
        shape = data["reshape"]
        x_train, x_val, x_test = (_reshape(a, shape, where) for a in (x_train, x_val, x_test))

    y_train, y_val, y_test = y[train], y[val], y[test]
    classes: tuple[Any, ...] = ()
    if task == CLASSIFICATION:
        found = np.unique(y_train)
        y_train, y_val, y_test = (
            np.searchsorted(found, a).astype(np.int32) for a in (y_train, y_val, y_test)
        )
        classes = tuple(c.item() for c in found)
        n_outputs = len(found)
    else:
        y_train, y_val, y_test = (np.asarray(a, dtype=np.float32) for a in (y_train, y_val, y_test))
        n_outputs = 1
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, task, n_outputs, classes, names)


def _rows(x: np.ndarray, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> tuple[Any, ...]:
    """Array features split by rows: no names, every column numeric."""
    return x[train], x[val], x[test], (), None


def _path(data: Mapping[str, Any], folder: Path) -> Path:
    return folder / Path(data["path"]).expanduser()


def _require_file(path: Path, where: str) -> None:
    if not path.is_file():
        raise DataError(
            f"{where}: [data] path: no file {path}. Fix the path; a relative one starts at the"
            f" study file's folder."
        )


def _split(y: np.ndarray, task: str, data: Mapping[str, Any], label: str) -> tuple[np.ndarray, ...]:
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
    except ValueError:
        if not classify:
            raise DataError(
                f"{label}: {len(y)} rows are too few to split into train, validation and test."
                f" Add rows."
            ) from None
        labels, sizes = np.unique(y, return_counts=True)
        raise DataError(
            f"{label}: {len(y)} rows in {len(labels)} classes are too few to split into train,"
            f" validation and test splits that each hold every class; the smallest class,"
            f" {labels[np.argmin(sizes)].item()!r}, has {sizes.min()} row(s). Add rows, or drop"
            f" the rarest classes."
        ) from None
    return train, val, test


def _standardize(
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


def _reshape(x: np.ndarray, shape: list[int], where: str) -> np.ndarray:
    size = math.prod(x.shape[1:])
    if math.prod(shape) != size:
        raise DataError(
            f"{where}: [data] reshape {shape} holds {math.prod(shape)} values per example, but"
            f" the data has {size}. Give a shape whose sizes multiply to {size}."
        )
    return x.reshape(len(x), *shape)


def _targets(
    y: Any, task: str, label: str, locate: Callable[[int], str] | None = None
) -> np.ndarray:
    """Checks the targets: one per example, none missing, numbers for regression, whole numbers
    or text for classification.

    Args:
        y: The targets.
        task: The study's task.
        label: Names the targets in messages.
        locate: Names example ``i`` in messages (a CSV file's line); ``example i`` by default.
    """
    import numpy as np

    locate = locate or (lambda i: f"example {i}")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{label} must hold one label or value per example, but has shape {y.shape}."
        )
    if y.dtype.kind in "US":
        if task == REGRESSION:
            first = next((i for i, v in enumerate(y) if _number(str(v)) is None), 0)
            raise DataError(
                f"{label} holds text ({locate(first)}: {y[first].item()!r}), but task is"
                f" regression, which needs numbers. Set task = \"classification\", or make the"
                f" targets numbers."
            )
        return y
    if y.dtype.kind not in "biuf":
        raise DataError(
            f"{label} holds {y.dtype} values; give numbers, or text for class labels."
        )
    missing = np.flatnonzero(~np.isfinite(y))
    if missing.size:
        raise DataError(
            f"{label} has {missing.size} missing (NaN or infinite) value(s), the first at"
            f" {locate(missing[0])}. Fill them in or drop those examples."
        )
    if task == CLASSIFICATION and y.dtype.kind == "f":
        fractional = np.flatnonzero(y != np.round(y))
        if fractional.size:
            raise DataError(
                f"{label} holds non-whole numbers ({locate(fractional[0])}:"
                f" {y[fractional[0]].item()}), but task is classification. Set task ="
                f" \"regression\", or give class labels."
            )
        y = y.astype(np.int64)
    return y


def _check_features(x: Any, n: int, label: str) -> np.ndarray:
    """Array features as float32, one row per example, with no missing values."""
    import numpy as np

    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(
            f"{label}: X must be numbers, but cannot be read as such ({e}). Encode text and"
            f" categories as numbers first, or use a CSV file, whose text columns are one-hot"
            f" encoded."
        ) from None
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim == 0 or len(x) != n:
        raise DataError(
            f"{label}: X has {len(x) if x.ndim else 0} examples but y has {n}; give one label or"
            f" value per example."
        )
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise DataError(
            f"{label}: X has missing (NaN or infinite) values in {int(bad.sum())} example(s), the"
            f" first at example {int(np.flatnonzero(bad)[0])}. Fill them in or drop those examples."
        )
    return x


def _read_npz(path: Path, data: Mapping[str, Any], where: str) -> tuple[Any, Any]:
    import numpy as np

    _require_file(path, where)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as e:
        raise DataError(
            f"{path}: cannot be read as .npz arrays of numbers or strings ({e}). Save it with"
            f" numpy.savez(path, x=X, y=y)."
        ) from None
    for key in ("x", "y"):
        if data[key] not in arrays:
            raise DataError(
                f"{path}: no array '{data[key]}'; it holds: {', '.join(sorted(arrays)) or 'none'}."
                f" Set [data] {key} = \"NAME\" to the array of"
                f" {'features' if key == 'x' else 'targets'}."
            )
    return arrays[data["x"]], arrays[data["y"]]


def _call_function(reference: str, folder: Path, where: str) -> tuple[Any, Any]:
    label = f"{where}: [data] source '{reference}'"
    function, module = references.load(reference, folder, label=label, error=DataError)
    references.check_signature(function, (), label=label, error=DataError)
    try:
        result = function()
    except Exception as e:
        raise DataError(
            f"{label} raised {references.describe(e, getattr(module, '__file__', None))}."
            f" Fix the function."
        ) from None
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise DataError(
            f"{label} returned {type(result).__name__}, not a pair (X, y) of arrays."
            f" End it with: return X, y"
        )
    return result


def _number(text: str) -> float | None:
    """The finite number a CSV cell holds, or None for text."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class _Table:
    """A CSV file's checked columns: feature columns as numbers or as text categories, and the
    target, with the file's line of every row for messages."""

    def __init__(self, path: Path, lines: list[int]) -> None:
        self.path = path
        self.lines = lines
        self.columns: dict[str, Any] = {}  # name -> float array, or str array of categories
        self.y: Any = None

    @classmethod
    def read(cls, path: Path, data: Mapping[str, Any], task: str, where: str) -> _Table:
        """Reads and checks a CSV file: its header, the target and every feature column.

        Raises:
            DataError: Naming the file, the line and the column, and the fix.
        """
        header, body = _read_rows(path, data["separator"], where)
        target = data["target"]
        if target not in header:
            raise DataError(
                f"{path}: no target column '{target}'; the columns are: {', '.join(header)}."
                f" Set [data] target to one of them."
            )
        features = data.get("features") or [name for name in header if name != target]
        unknown = [name for name in features if name not in header]
        if unknown:
            raise DataError(
                f"{path}: no column(s) {', '.join(map(repr, unknown))}; the columns are:"
                f" {', '.join(header)}. Fix [data] features."
            )
        table = cls(path, [line for line, _ in body])
        column = {name: [row[i] for _, row in body] for i, name in enumerate(header)}
        table.y = table._target(target, column[target], task)
        for name in features:
            table.columns[name] = table._feature(name, column[name])
        return table

    def _lines_of(self, rows: list[int], values: list[str]) -> str:
        shown = ", ".join(f"line {self.lines[i]}: {values[i]!r}" for i in rows[:3])
        return shown + (", ..." if len(rows) > 3 else "")

    def _parse(
        self, name: str, values: list[str], fix: str
    ) -> tuple[list[float | None], list[int]]:
        """The numbers a column holds (None for text) and the rows of text; refuses missing ones."""
        missing = [i for i, v in enumerate(values) if v.strip().lower() in MISSING]
        if missing:
            raise DataError(
                f"{self.path}: column '{name}' has {len(missing)} missing value(s)"
                f" ({self._lines_of(missing, values)}). {fix}"
            )
        numbers = [_number(v) for v in values]
        return numbers, [i for i, v in enumerate(numbers) if v is None]

    def _target(self, name: str, values: list[str], task: str) -> np.ndarray:
        """The target as numbers, or as text labels for classification."""
        numbers, text = self._parse(name, values, "Fill them in or drop those rows.")
        y = [v.strip() for v in values] if text else numbers
        return _targets(y, task, f"{self.path}: target '{name}'", lambda i: f"line {self.lines[i]}")

    def _feature(self, name: str, values: list[str]) -> np.ndarray:
        """A feature column: numbers, or text, whose categories are found on the training split."""
        import numpy as np

        fix = "Fill them in, drop those rows, or leave the column out of [data] features."
        numbers, text = self._parse(name, values, fix)
        if not text:
            return np.asarray(numbers, dtype=np.float64)
        if len(text) < len(values):
            counted = [i for i, v in enumerate(numbers) if v is not None]
            raise DataError(
                f"{self.path}: column '{name}' holds numbers"
                f" ({self._lines_of(counted[:1], values)}) and text"
                f" ({self._lines_of(text, values)}); fix the values that are wrong (a category"
                f" column must hold only text)."
            )
        return np.asarray([v.strip() for v in values])

    def encode(self, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> tuple[Any, ...]:
        """The three splits' feature matrices: numbers as they are, text one-hot encoded with
        the training split's categories.

        Returns:
            x_train, x_val, x_test, the column names, and the indices of the numeric columns.
        """
        import numpy as np

        blocks, names, numeric = [], [], []
        for name, values in self.columns.items():
            if values.dtype.kind == "f":
                numeric.append(len(names))
                names.append(name)
                blocks.append(values[:, None])
                continue
            categories = np.unique(values[train])
            if len(categories) > max(MAX_CATEGORIES, len(train) // 2):
                raise DataError(
                    f"{self.path}: text column '{name}' has {len(categories)} different values in"
                    f" {len(train)} training rows; it looks like an identifier or free text, not a"
                    f" category. Leave it out: list the other columns in [data] features."
                )
            names += [f"{name}={c}" for c in categories]
            blocks.append((values[:, None] == categories[None, :]).astype(np.float64))
        x = np.concatenate(blocks, axis=1)
        return x[train], x[val], x[test], tuple(names), numeric


def _read_rows(
    path: Path, separator: str, where: str
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A CSV file's header and its non-blank rows, each with its line number."""
    _require_file(path, where)
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file, delimiter=separator)
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot be read as CSV text in UTF-8 ({e}).") from None
    if not rows:
        raise DataError(
            f"{path}: is empty; it needs a header row of column names, then one row per example."
        )
    header = [name.strip() for name in rows[0][1]]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataError(
            f"{path}: the header repeats column(s) {', '.join(map(repr, repeated))}; rename them."
        )
    if len(header) < 2:
        raise DataError(
            f"{path}: the header has one column, {header[0]!r}; a CSV needs features and a target."
            f" Check [data] separator (now {separator!r})."
        )
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(
                f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}."
                f" Check the separator ({separator!r}) and the quoting."
            )
    return header, rows[1:]
