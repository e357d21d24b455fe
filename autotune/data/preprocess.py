"""Splitting and scaling: fixed, seeded train / validation / test splits, and features
standardized with the training split's statistics alone.

What was fitted on the training split is kept as a :class:`Preprocessing`, plain data that
:func:`keras_inputs` turns into Keras layers, so that an exported model takes raw inputs and
encodes them exactly as training did.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autotune.data.schema import CLASSIFICATION
from autotune.errors import DataError

if TYPE_CHECKING:
    import numpy as np

NUMBER = "number"
TEXT = "text"


@dataclass(frozen=True)
class Column:
    """One feature column of a CSV, as the model takes it.

    Attributes:
        name: The column's name in the CSV.
        type: ``"number"`` (standardized: ``(value - mean) / scale``) or ``"text"`` (one-hot over
            ``categories``; a category the training split lacks encodes as all zeros).
        mean, scale: The training split's mean and the StandardScaler's scale (1 for a column
            that holds one value); numbers only.
        categories: The training split's categories, in the order of the one-hot columns.
        shift: Subtracted from a number, in float64, before it is rounded to the
            preprocessing's type; numbers only. The CSV reader takes one near the column's
            values, so that rounding keeps the digits that tell them apart (a timestamp's, a
            price's). The rounded ``value - shift`` is standardized with ``mean - shift``
            (computed in float64) and ``scale``, each rounded to that type.
    """

    name: str
    type: str
    mean: float = 0.0
    scale: float = 1.0
    categories: tuple[str, ...] = ()
    shift: float = 0.0


@dataclass(frozen=True)
class Preprocessing:
    """What turns raw inputs into the arrays the model trained on, fitted on the training split.

    A CSV's model takes ``columns``, one per feature column in input order; array data (the
    bundled sets, an npz file, a function) takes one array of examples of ``shape``, each value
    standardized with its own ``mean`` and ``scale`` (over the flattened example).

    Attributes:
        columns: The CSV's feature columns; empty for array data.
        shape: One raw example's shape (array data).
        mean, scale: Per value of the flattened example (array data).
        reshape: The shape the model takes each example in (``[data] reshape``), if any.
        dtype: The float type the numbers were standardized in (``float32`` or ``float64``):
            the StandardScaler computes in its input's type.
        rescale: Images: raw pixel values are multiplied by it (1/255), instead of
            ``mean`` and ``scale``.
        raw: ``tf.data`` streams: the model takes the examples as the streams give them.
    """

    columns: tuple[Column, ...] = ()
    shape: tuple[int, ...] = ()
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    reshape: tuple[int, ...] | None = None
    dtype: str = "float32"
    rescale: float | None = None
    raw: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The preprocessing as plain data, for an exported model's metadata."""
        out: dict[str, Any]
        if self.columns:
            out = {
                "columns": [
                    {
                        "name": c.name,
                        "type": c.type,
                        "mean": c.mean,
                        "scale": c.scale,
                        "shift": c.shift,
                    }
                    if c.type == NUMBER
                    else {"name": c.name, "type": c.type, "categories": list(c.categories)}
                    for c in self.columns
                ]
            }
        elif self.rescale is not None:
            out = {"shape": list(self.shape), "rescale": self.rescale}
        elif self.raw:
            out = {"shape": list(self.shape), "raw": True}
        else:
            out = {"shape": list(self.shape), "mean": list(self.mean), "scale": list(self.scale)}
        if self.reshape is not None:
            out["reshape"] = list(self.reshape)
        out["dtype"] = self.dtype
        return out


def of_columns(
    features: Sequence[str],
    names: Sequence[str],
    numeric: Sequence[int],
    mean: Iterable[float],
    scale: Iterable[float],
    reshape: Sequence[int] | None = None,
    dtype: str = "float32",
    shift: Iterable[float] | None = None,
) -> Preprocessing:
    """The preprocessing of a CSV's encoded feature matrix.

    Args:
        features: The feature columns, in the order the matrix holds them.
        names: The matrix's column names: a number column's name, or ``name=category`` for
            each one-hot column of a text column.
        numeric: The indices of the number columns in the matrix.
        mean, scale: The scaler's statistics of the number columns, in the same order.
        reshape: ``[data] reshape``, if given.
        dtype: The matrix's float type.
        shift: The number columns' shifts, in the same order (none by default).
    """
    numbers = set(numeric)
    shifts = [0.0] * len(numbers) if shift is None else shift
    figures = zip(mean, scale, shifts, strict=True)
    statistics = dict(zip(sorted(numbers), figures, strict=True))
    number_names = {names[i]: i for i in numbers}
    # A one-hot column belongs to the text column whose name is its longest prefix before "=".
    text = sorted((f for f in features if f not in number_names), key=len, reverse=True)
    categories: dict[str, list[str]] = {f: [] for f in text}
    for i, name in enumerate(names):
        if i in numbers:
            continue
        owner = next(f for f in text if name.startswith(f + "="))
        categories[owner].append(name[len(owner) + 1 :])
    columns = []
    for feature in features:
        if feature in number_names:
            m, s, c = statistics[number_names[feature]]
            columns.append(Column(feature, NUMBER, float(m), float(s), shift=float(c)))
        else:
            columns.append(Column(feature, TEXT, categories=tuple(categories[feature])))
    return Preprocessing(columns=tuple(columns), reshape=_shape(reshape), dtype=dtype)


def of_arrays(
    shape: Sequence[int],
    mean: Iterable[float],
    scale: Iterable[float],
    reshape: Sequence[int] | None = None,
    dtype: str = "float32",
) -> Preprocessing:
    """The preprocessing of array data: examples of ``shape``, standardized per value."""
    return Preprocessing(
        shape=tuple(int(n) for n in shape),
        mean=tuple(float(m) for m in mean),
        scale=tuple(float(s) for s in scale),
        reshape=_shape(reshape),
        dtype=dtype,
    )


def _shape(shape: Sequence[int] | None) -> tuple[int, ...] | None:
    return None if shape is None else tuple(int(n) for n in shape)


def input_name(column: str) -> str:
    """The name of the Keras input that takes a CSV column: the column's name, with ``/`` (which
    Keras refuses in a name) as ``_``."""
    return column.replace("/", "_")


def keras_inputs(preprocessing: Preprocessing) -> tuple[Any, Any]:
    """Keras inputs that take raw data, and the tensor they make: the model's input, encoded
    as training encoded it, from built-in layers only (a saved model loads without autotune).

    A CSV's model takes a dict of inputs, one per feature column (named by :func:`input_name`):
    numbers as float64 (less the column's shift, then rounded to the preprocessing's type, as
    the CSV reader rounds them), text as strings. Array data is one float32 input.

    Returns:
        The inputs (a dict, or one tensor) and the float32 tensor to call the model on.
    """
    import keras

    if preprocessing.columns:
        inputs: Any = {}
        parts = []
        for column in preprocessing.columns:
            name = input_name(column.name)
            if column.type == NUMBER:
                inputs[name] = keras.Input(shape=(1,), dtype="float64", name=name)
                parts.append(_number(inputs[name], column, preprocessing.dtype))
            else:
                inputs[name] = keras.Input(shape=(1,), dtype="string", name=name)
                parts.append(_one_hot(inputs[name], column.categories))
        # Casting to float32 last rounds each value once, as the training arrays were rounded.
        if len(parts) > 1:
            x = keras.layers.Concatenate(dtype="float32")(parts)
        else:
            x = keras.layers.Identity(dtype="float32")(parts[0])
        shape: tuple[int, ...] = (int(x.shape[-1]),)
    elif preprocessing.rescale is not None:  # images: raw pixels in
        shape = preprocessing.shape
        inputs = keras.Input(shape=shape, dtype="float32", name="x")
        x = keras.layers.Rescaling(preprocessing.rescale)(inputs)
    elif preprocessing.raw:  # streams: the examples as they come
        shape = preprocessing.shape
        x = inputs = keras.Input(shape=shape, dtype="float32", name="x")
    else:
        shape = preprocessing.shape
        inputs = keras.Input(shape=shape, dtype="float32", name="x")
        x = keras.layers.Flatten()(inputs) if len(shape) > 1 else inputs
        x = _standardized(x, preprocessing.mean, preprocessing.scale, preprocessing.dtype)
    target = preprocessing.reshape or shape
    if tuple(x.shape[1:]) != tuple(target):
        x = keras.layers.Reshape(target)(x)
    return inputs, x


# Keras' Normalization divides by max(sqrt(variance), epsilon), epsilon 1e-7 by default; a
# scale below this is first multiplied up by a power of two, which changes no digit.
_SMALL_SCALE = 1e-3


def _number(x: Any, column: Column, dtype: str) -> Any:
    """A number column standardized as :func:`standardize` did it: less its shift in float64,
    rounded to ``dtype`` (by the next layer), then less ``mean - shift`` and over ``scale``."""
    if column.shift:
        # A Normalization keeps the shift as a float64 variable and subtracts it in float64;
        # Rescaling's offset would pass through float32 on its way.
        x = _standardized(x, [column.shift], [1.0], "float64")
    return _standardized(x, [column.mean - column.shift], [column.scale], dtype)


def _standardized(x: Any, mean: Sequence[float], scale: Sequence[float], dtype: str) -> Any:
    """``(x - mean) / scale`` per value, as scikit-learn's StandardScaler computes it: in the
    data's own float type ``dtype``, with the mean and scale rounded to it.

    The statistics are the layer's variables (saved in that type), not its ``mean`` and
    ``variance`` arguments, which a saved model keeps as JSON lists and reads back as float32.
    ``sqrt(scale**2) == scale`` exactly in floating point, so Keras' division by the square root
    of the variance gives the scaler's numbers.
    """
    import keras
    import numpy as np

    means = np.asarray(mean, dtype=np.float64).astype(dtype)
    scales = np.asarray(scale, dtype=np.float64).astype(dtype)
    small = scales < _SMALL_SCALE
    if small.any():
        factor = np.where(small, 2.0 ** -np.frexp(scales)[1].astype(np.float64), 1.0)
        x = keras.layers.Rescaling(factor.tolist(), dtype=dtype)(x)
        means, scales = means * factor.astype(dtype), scales * factor.astype(dtype)
    layer = keras.layers.Normalization(dtype=dtype)
    layer.build((None, len(means)))
    layer.adapt_mean.assign(means)
    layer.adapt_variance.assign(np.square(scales))
    layer.finalize_state()
    return layer(x)


def _one_hot(x: Any, categories: Sequence[str]) -> Any:
    """One column per training category, in order; any other value encodes as all zeros.

    StringLookup puts values outside its vocabulary in a column of their own, first; it is cut.
    """
    import keras

    oov = "[UNK]"
    while oov in categories:
        oov = f"[{oov}]"
    width = len(categories)
    x = keras.layers.StringLookup(
        vocabulary=list(categories), oov_token=oov, output_mode="one_hot"
    )(x)
    x = keras.layers.Reshape((width + 1, 1))(x)
    x = keras.layers.Cropping1D((1, 0))(x)
    return keras.layers.Reshape((width,))(x)


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
    x_train: np.ndarray,
    x_val: np.ndarray,
    x_test: np.ndarray,
    numeric: Any = None,
    shift: Sequence[float] | None = None,
) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """Standardizes each feature (only the ``numeric`` columns, if given) with the training
    split's mean and deviation, as scikit-learn's StandardScaler does; examples of any shape
    are standardized per value.

    The arrays are standardized in place, in their own float type, and returned as float32: a
    large data set is not held twice.

    Args:
        numeric: The indices of the columns to standardize; all by default.
        shift: What the ``numeric`` columns' values had subtracted before they were rounded to
            their type (:class:`Column`); the means returned are of the values before. A column
            is standardized with ``mean - shift``, computed in float64, as :func:`keras_inputs`
            computes it.

    Returns:
        The three splits, and the scaler's ``mean_`` and ``scale_`` (empty without numeric
        columns).
    """
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    shape = x_train.shape[1:]
    flat = [a.reshape(len(a), -1) for a in (x_train, x_val, x_test)]
    if numeric is None:
        # Every value at once: examples of array data are rows of a row-major array.
        scaler = StandardScaler().fit(flat[0])
        mean, scale = scaler.mean_, scaler.scale_
        for a in flat:
            # As the scaler's transform computes, in the array's type, without its copy.
            a -= mean.astype(a.dtype)
            a /= scale.astype(a.dtype)
    else:
        # Column by column: a CSV's matrices are column-major, and fitting the number columns
        # at once would copy them, and the scaler would make a float64 copy of that.
        fitted = [StandardScaler().fit(flat[0][:, j : j + 1]) for j in numeric]
        shifts = np.zeros(len(fitted)) if shift is None else np.asarray(shift, dtype=np.float64)
        mean = shifts + [f.mean_[0] for f in fitted]
        scale = np.array([f.scale_[0] for f in fitted], dtype=np.float64)
        for a in flat:
            real = a.dtype.type
            for j, m, s, c in zip(numeric, mean, scale, shifts, strict=True):
                column = a[:, j]
                column -= real(m - c)
                column /= real(s)
    arrays = tuple(a.astype(np.float32, copy=False).reshape(len(a), *shape) for a in flat)
    return arrays, mean, scale


def reshape(x: np.ndarray, shape: list[int], where: str) -> np.ndarray:
    size = math.prod(x.shape[1:])
    if math.prod(shape) != size:
        raise DataError(
            f"{where}: [data] reshape {shape} holds {math.prod(shape)} values per example, but"
            f" the data has {size}. Give a shape whose sizes multiply to {size}."
        )
    return x.reshape(len(x), *shape)
